"""The input's bits measured on the calibration data: ``input_bits="auto"`` (the default of
``onespike convert``) takes the fewest that cost the float network nothing measurable, says
so, and ``--input-bits`` still pins them."""

import functools

import numpy as np
import pytest

from onespike.cli import main
from onespike.mapper import convert
from onespike.sim import closed_form

torch = pytest.importorskip("torch")


@functools.lru_cache(maxsize=None)
def standardized_mlp():
    """An MLP on StandardScaler features (a synthetic 5-class task): 4 input bits lose
    about a point and a half, 6 bits none."""
    from sklearn.datasets import make_classification
    from sklearn.preprocessing import StandardScaler
    from torch import nn

    x, y = make_classification(n_samples=3000, n_features=20, n_informative=12,
                               n_redundant=4, n_classes=5, class_sep=1.2, random_state=0)
    x = StandardScaler().fit(x[:2000]).transform(x).astype(np.float32)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 5))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    xt, yt = torch.tensor(x[:2000]), torch.tensor(y[:2000])
    for _ in range(300):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return model.eval(), x[:2000], x[2000:], y[2000:]


def accuracy(net, x, y):
    return float(np.mean(closed_form(net, net.encoder.encode(x)).classes == y))


def test_auto_takes_the_fewest_input_bits_that_cost_nothing():
    model, calib, x_test, y_test = standardized_mlp()
    with torch.no_grad():
        float_accuracy = float(np.mean(model(torch.tensor(x_test)).argmax(1).numpy() == y_test))
    notes = []
    net = convert(model, calib, input_bits="auto", notes=notes)
    assert net.encoder.act_bits == 6 and {l.act_bits for l in net.layers[:-1]} == {4}
    assert notes[0].startswith("input bits 6: the float network's class changes on "
                               "quantized inputs for 4 bits 3.3%, 5 bits 0.2%, 6 bits 0.1% "
                               "of 2000 calibration samples (8 bits: 0.0%); --input-bits N "
                               "pins it")
    assert accuracy(net, x_test, y_test) >= float_accuracy - 0.003     # 84.9 % vs 84.5 %
    assert accuracy(convert(model, calib), x_test, y_test) < float_accuracy - 0.01


def test_inputs_on_a_grid_of_act_bits_levels_keep_act_bits():
    model = standardized_mlp()[0]
    grid = np.random.default_rng(0).integers(0, 16, (300, 20)) / 15 * 4 - 2
    net = convert(model, grid, input_bits="auto")
    assert net.encoder.act_bits == 4


def test_convert_command_chooses_by_default_and_input_bits_pins(tmp_path, capsys):
    model, calib, _, _ = standardized_mlp()
    path = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(model, (torch.tensor(calib[:1]),)), path)
    np.save(tmp_path / "x.npy", calib)
    args = ["convert", str(path), "--calib", str(tmp_path / "x.npy"), "-o",
            str(tmp_path / "net.npz")]
    assert main(args) == 0
    assert "note: input bits 6: the float network's class changes" in capsys.readouterr().out
    assert main(args + ["--input-bits", "4"]) == 0
    out = capsys.readouterr().out
    assert "input bits" not in out and "raise --input-bits" in out
