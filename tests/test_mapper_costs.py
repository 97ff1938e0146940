"""The mapper says what a conversion costs, and refuses what it cannot read in one line."""

import numpy as np
import pytest

from onespike.errors import OnespikeError

nn = pytest.importorskip("torch.nn")


@pytest.fixture(scope="module")
def small_mlp(torch):
    from onespike import zoo

    data = zoo.digits()
    return zoo.train(zoo.mlp([64, 32, 10]), data, epochs=5), data


def test_agreement_is_reported(small_mlp):
    from onespike.mapper import convert

    model, data = small_mlp
    notes = []
    convert(model, data.x_train[:500], act_bits=8, weight_bits=8, notes=notes)
    assert len(notes) == 1
    assert notes[0].startswith("the integer network's classes agree with the float "
                               "network's on ") and notes[0].endswith(
                                   "% of the 500 calibration samples")
    share = float(notes[0].split(" on ")[1].split("%")[0])
    assert share >= 99.0


def test_a_costly_setting_is_named(small_mlp):
    from onespike.mapper import convert

    model, data = small_mlp
    notes = []
    convert(model, data.x_train[:500], weight_bits=2, notes=notes)
    assert len(notes) == 2 and notes[1].startswith("warning: ")
    assert "weight_bits 2 costs most (at 16: " in notes[1]
    assert notes[1].endswith("agree): raise --weight-bits")


def test_command_line_prints_the_costs(small_mlp, tmp_path, capsys, torch):
    from onespike.cli import main

    model, data = small_mlp
    example = torch.as_tensor(data.x_train[:1], dtype=torch.float32)
    torch.export.save(torch.export.export(model, (example,)), tmp_path / "m.pt2")
    np.save(tmp_path / "x.npy", data.x_train[:300])
    assert main(["convert", str(tmp_path / "m.pt2"), "--calib", str(tmp_path / "x.npy"),
                 "--weight-bits", "2", "-o", str(tmp_path / "n.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("note: input bits ")            # chosen: --input-bits auto
    assert lines[2].startswith("note: the integer network's classes agree")
    assert lines[3].startswith("warning: ") and lines[3].endswith("raise --weight-bits")


@pytest.mark.parametrize("what", ["state_dict", "module", "legacy pickle"])
def test_torch_save_checkpoints_are_refused_in_one_line(torch, tmp_path, capsys, what):
    from onespike.cli import main

    model = nn.Linear(4, 2)
    path = tmp_path / "model.pt"
    if what == "state_dict":
        torch.save(model.state_dict(), path)
    elif what == "module":
        torch.save(model, path)
    else:
        torch.save(model.state_dict(), path, _use_new_zipfile_serialization=False)
    np.save(tmp_path / "x.npy", np.zeros((3, 4)))
    assert main(["convert", str(path), "--calib", str(tmp_path / "x.npy"), "-o",
                 str(tmp_path / "n.npz")]) == 2
    err = capsys.readouterr().err
    assert err == (f"onespike: error: {path} is a torch.save checkpoint (pickled weights or "
                   f"module), which onespike does not unpickle; export the model instead: "
                   f"torch.export.save(torch.export.export(model.eval(), (example,)), "
                   f"'model.pt2') or torch.onnx.export(..., 'model.onnx')\n")
    with pytest.raises(OnespikeError):
        from onespike.mapper import convert_exported
        convert_exported(path, np.zeros((3, 4)))
