"""The command line contract: outputs, --json, and one-line errors with no partial files."""

import json

import numpy as np
import pytest

from onespike.cli import main


@pytest.fixture(scope="module")
def exported(tmp_path_factory, digits_mlp, torch):
    model, data = digits_mlp
    folder = tmp_path_factory.mktemp("cli")
    path = folder / "model.pt2"
    torch.export.save(torch.export.export(model, (torch.as_tensor(data.x_train[:1]),)), path)
    np.save(folder / "calib.npy", data.x_train)
    np.save(folder / "x.npy", data.x_test)
    np.save(folder / "y.npy", data.y_test)
    return folder


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_convert_then_simulate_json(exported, capsys, tmp_path, digits_mlp):
    net = tmp_path / "net.npz"
    code, out, _ = run(capsys, "convert", exported / "model.pt2", "--calib",
                       exported / "calib.npy", "-o", net, "--json")
    assert code == 0 and json.loads(out)["output"] == str(net) and net.is_file()
    results = {}
    for mode in ("event", "closed"):
        code, out, _ = run(capsys, "simulate", net, "--inputs", exported / "x.npy",
                           "--labels", exported / "y.npy", "--mode", mode, "--json")
        assert code == 0
        results[mode] = json.loads(out)  # exactly one JSON object
    assert results["event"]["samples"] == len(digits_mlp[1].y_test)
    assert results["event"]["accuracy"] == results["closed"]["accuracy"] > 0.9
    assert 0 < results["event"]["spikes_per_neuron"] <= 1
    assert results["event"]["synaptic_ops_per_inference"] > 0
    code, out, _ = run(capsys, "info", net)
    assert code == 0 and "readout" in out


@pytest.mark.parametrize("problem", ["missing model", "not a zip", "truncated", "bad calib",
                                     "calib shape", "bits", "pickle calib"])
def test_convert_errors_are_one_line(exported, capsys, tmp_path, problem):
    model, calib = exported / "model.pt2", exported / "calib.npy"
    args = []
    if problem == "missing model":
        model = tmp_path / "none.pt2"
    elif problem == "not a zip":
        model = tmp_path / "junk.pt2"
        model.write_bytes(b"not a model")
    elif problem == "truncated":
        model = tmp_path / "cut.pt2"
        data = (exported / "model.pt2").read_bytes()
        model.write_bytes(data[: len(data) // 2])
    elif problem == "bad calib":
        calib = tmp_path / "nan.npy"
        np.save(calib, np.full((4, 64), np.nan))
    elif problem == "calib shape":
        calib = tmp_path / "shape.npy"
        np.save(calib, np.zeros((4, 65)))
    elif problem == "bits":
        args = ["--act-bits", "0"]
    elif problem == "pickle calib":
        calib = tmp_path / "obj.npy"
        np.save(calib, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    out_file = tmp_path / "out.npz"
    code, out, err = run(capsys, "convert", model, "--calib", calib, "-o", out_file, *args)
    assert code != 0
    assert err.startswith("onespike: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and out == ""
    assert not out_file.exists() and not list(tmp_path.glob("out.npz*"))


def test_simulate_errors(exported, capsys, tmp_path):
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    code, _, err = run(capsys, "simulate", tmp_path / "foreign.npz", "--inputs",
                       exported / "x.npy")
    assert code != 0 and "not a onespike network" in err
    net = tmp_path / "net.npz"
    assert run(capsys, "convert", exported / "model.pt2", "--calib", exported / "calib.npy",
               "-o", net)[0] == 0
    np.save(tmp_path / "wrong.npy", np.zeros((3, 8, 8)))
    code, _, err = run(capsys, "simulate", net, "--inputs", tmp_path / "wrong.npy")
    assert code != 0 and "expects (64,)" in err
    code, _, err = run(capsys, "simulate", net, "--inputs", exported / "x.npy", "--labels",
                       exported / "calib.npy")
    assert code != 0 and "labels" in err


def test_help_teaches(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("convert", "simulate", "demo", "info"):
        assert command in out
    assert "onespike demo" in out


def test_report_fills_its_float_row_from_the_model(exported, capsys, tmp_path, digits_mlp,
                                                  torch):
    """``report --model model.pt2``: the float row is the model's accuracy on the inputs
    (its float64 twin's, computed here); ``--float-accuracy`` is taken as given; both at
    once, or --model without labels, are one clear error."""
    model, data = digits_mlp
    net = tmp_path / "net.npz"
    assert run(capsys, "convert", exported / "model.pt2", "--calib", exported / "calib.npy",
               "-o", net)[0] == 0
    with torch.no_grad():
        twin = torch.nn.Sequential(*model).double()
        expected = float(np.mean(twin(torch.as_tensor(data.x_test, dtype=torch.float64))
                                 .argmax(1).numpy() == data.y_test))
    data_args = ["--inputs", exported / "x.npy", "--labels", exported / "y.npy"]
    code, _, _ = run(capsys, "report", net, *data_args, "--model", exported / "model.pt2",
                     "-o", tmp_path / "r", "--measure", 0)
    report = (tmp_path / "r" / "report.md").read_text()
    assert code == 0 and f"| float (the trained model) | {expected:.4f} |" in report
    code, _, _ = run(capsys, "report", net, *data_args, "--float-accuracy", 0.9123,
                     "-o", tmp_path / "r2", "--measure", 0)
    assert code == 0 and "| float (the trained model) | 0.9123 |" in (
        tmp_path / "r2" / "report.md").read_text()
    for extra, message in [(["--model", exported / "model.pt2", "--float-accuracy", 0.9],
                            "give --model or --float-accuracy, not both"),
                           (["--float-accuracy", 91], "is a fraction in [0, 1]")]:
        code, _, err = run(capsys, "report", net, *data_args, *extra, "-o", tmp_path / "r3")
        assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "r3").exists()


def test_simulate_rate_coding_reports_exactness(exported, capsys, tmp_path):
    """One hidden layer at T = A: rate coding is proved exact, so its accuracy is the TTFS
    one; --steps 3 is a coarser network and says it is not guaranteed."""
    net = tmp_path / "net.npz"
    assert run(capsys, "convert", exported / "model.pt2", "--calib", exported / "calib.npy",
               "-o", net)[0] == 0
    data = ["--inputs", exported / "x.npy", "--labels", exported / "y.npy", "--json"]
    ttfs = json.loads(run(capsys, "simulate", net, *data, "--mode", "closed")[1])
    code, out, _ = run(capsys, "simulate", net, *data, "--code", "rate-bipolar")
    rate = json.loads(out)
    assert code == 0 and rate["guaranteed_exact"] and rate["accuracy"] == ttfs["accuracy"]
    assert rate["spikes_per_inference"] > ttfs["spikes_per_inference"]
    code, out, err = run(capsys, "simulate", net, *data, "--coding", "rate", "--steps", "3")
    coarse = json.loads(out)              # the old name still works, and says the new one
    assert code == 0 and "simulate --coding is now --code" in err
    assert not coarse["guaranteed_exact"] and coarse["steps"] == 3
    code, _, err = run(capsys, "simulate", net, *data, "--steps", "3")
    assert code == 2 and "--steps applies to --code rate" in err and err.count("\n") == 1


@pytest.fixture
def small_net(tmp_path):
    from onespike.ir import save
    from onespike.sim import random_network

    return save(random_network(np.random.default_rng(21), conv=False, max_layers=3),
                tmp_path / "net.npz")


def test_firing_is_taught_and_offered_where_a_ttfs_accelerator_is_generated(capsys):
    for command in ("generate", "verify", "build"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--firing {auto,sweep,sorted}" in text, command
        assert "sweep tests every state word in every time step" in text
        assert "default auto" in text


@pytest.mark.parametrize("argv", [
    ["generate", "NET", "-o", "OUT", "--coding", "dense", "--firing", "sorted"],
    ["verify", "NET", "--coding", "dense", "--firing", "sweep"],
    ["build", "NET", "--board", "icebreaker", "-o", "OUT", "--coding", "dense",
     "--firing", "sorted"],
])
def test_firing_with_the_dense_coding_is_one_clear_error(small_net, tmp_path, capsys, argv):
    argv = [str(small_net) if a == "NET" else str(tmp_path / "out") if a == "OUT" else a
            for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("onespike: error: --firing ") and err.count("\n") == 1, err
    assert "applies to --coding ttfs only" in err
    assert not (tmp_path / "out").exists()


def test_an_unknown_firing_is_refused_with_the_choices(small_net, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["generate", str(small_net), "-o", str(tmp_path / "out"), "--firing", "fast"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    last = err.splitlines()[-1]      # argparse quotes the choices from Python 3.12 on
    assert "argument --firing: invalid choice: 'fast'" in last
    assert all(choice in last for choice in ("auto", "sweep", "sorted"))
    assert not (tmp_path / "out").exists()


def test_lanes_that_are_not_counts_are_refused(small_net, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["generate", str(small_net), "-o", str(tmp_path / "out"), "--lanes", "2,x"])
    assert exit_.value.code == 2
    assert "argument --lanes: '2,x' is neither a lane count P nor one count per layer" in \
        capsys.readouterr().err
    for lanes, error in [("0", "lane count must be a positive integer, not 0"),
                         ("0,1", "layer 0: lane count must be 1..")]:    # the library's
        code, out, err = run(capsys, "generate", small_net, "-o", tmp_path / "out", "--lanes",
                             lanes)
        assert code == 2 and out == "" and error in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_lanes_per_layer_are_taken_as_given(small_net, tmp_path, capsys):
    from onespike.ir import load

    sizes = [layer.weight.shape[0] for layer in load(small_net).layers]
    lanes = [max(1, n - 1) for n in sizes]
    code, out, _ = run(capsys, "generate", small_net, "-o", tmp_path / "out",
                       "--lanes", ",".join(map(str, lanes)), "--json")
    assert code == 0 and json.loads(out)["lanes"] == lanes
    code, _, err = run(capsys, "generate", small_net, "-o", tmp_path / "out2", "--lanes",
                       ",".join(map(str, lanes)), "--uniform-lanes")
    assert code == 2 and "--uniform-lanes takes one lane count" in err


def test_a_lane_count_on_a_cnn_is_spent_where_the_work_is(digits_cnn_net, tmp_path, capsys):
    """``--lanes 4`` on the digits CNN: the lanes 4 everywhere takes, spent by the cycle
    model where the work is, said in the output; ``--uniform-lanes``: 4 everywhere; the
    accelerator with the spent lanes matches the golden model on Icarus."""
    from onespike.hdl.plan import layer_lanes, spend_lanes
    from onespike.ir import save

    net, data = digits_cnn_net
    path = save(net, tmp_path / "cnn.npz")
    lanes, how, cycles = spend_lanes(net, 4)
    assert how == "by work" and cycles["by work"] < cycles["uniform"]
    code, out, _ = run(capsys, "generate", path, "-o", tmp_path / "out", "--lanes", 4)
    assert code == 0 and f"lanes spent where the work is, {lanes}" in out
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [layer.get("lanes", 1) for layer in manifest["layers"]] == lanes
    code, out, _ = run(capsys, "generate", path, "-o", tmp_path / "uniform",
                       "--lanes", 4, "--uniform-lanes", "--json")
    assert json.loads(out)["lanes"] == layer_lanes(net, 4) != lanes
    np.save(tmp_path / "x.npy", data.x_test[:3])
    code, out, _ = run(capsys, "verify", path, "--lanes", 4, "--inputs",
                       tmp_path / "x.npy", "--build-dir", tmp_path / "sim", "--json")
    assert code == 0 and json.loads(out)["mismatches"] == 0


@pytest.mark.parametrize("options", [["--lanes", "3"], ["--lanes", "2", "--coding", "dense"],
                                     ["--lanes", "2,1", "--firing", "sorted", "--no-dsp"]])
def test_a_plan_rebuilds_the_same_verilog(small_net, tmp_path, capsys, options):
    """``plan --json`` then ``generate --plan``: the Verilog of ``generate`` with the same
    options, byte for byte."""
    code, out, _ = run(capsys, "plan", small_net, *options, "--json")
    assert code == 0
    (tmp_path / "plan.json").write_text(out)
    assert run(capsys, "generate", small_net, "--plan", tmp_path / "plan.json",
               "-o", tmp_path / "planned")[0] == 0
    assert run(capsys, "generate", small_net, *options, "-o", tmp_path / "direct")[0] == 0
    verilog = [(tmp_path / d / "onespike_top.v").read_bytes() for d in ("planned", "direct")]
    assert verilog[0] == verilog[1]


def test_an_edited_plan_is_built_as_edited_and_verified(small_net, tmp_path, capsys):
    from onespike.ir import load

    net = load(small_net)
    code, out, _ = run(capsys, "plan", small_net, "--lanes", "1", "--json")
    plan = json.loads(out)
    hidden = next(n for n, layer in enumerate(net.layers) if not layer.is_readout)
    plan["options"]["firing"][hidden] = "sorted"
    plan["options"]["lanes"][hidden] = 2
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    code, out, _ = run(capsys, "verify", small_net, "--plan", tmp_path / "plan.json",
                       "--samples", 4, "--build-dir", tmp_path / "sim", "--json")
    assert code == 0 and json.loads(out)["mismatches"] == 0
    rtl = next((tmp_path / "sim").glob("*/rtl/manifest.json"))
    layer = json.loads(rtl.read_text())["layers"][hidden]
    assert layer["firing"] == "sorted" and layer["lanes"] == 2


@pytest.mark.parametrize("edit, beside, error", [
    (lambda p: p.update(format="x"), [], "not an accelerator plan"),
    (lambda p: p["layers"].pop(), [], "made for a network of other layers"),
    (lambda p: p["options"].pop("lanes"), [], "must hold exactly coding, lanes"),
    (lambda p: p["options"]["firing"].__setitem__(0, None), [], "sweep or sorted for each"),
    (lambda p: None, ["--lanes", "2"], "--plan fixes the accelerator's options; drop --lanes"),
    (None, [], "is not JSON")])
def test_a_plan_that_does_not_fit_is_refused(small_net, tmp_path, capsys, edit, beside,
                                             error):
    code, out, _ = run(capsys, "plan", small_net, "--json")
    plan = json.loads(out)
    path = tmp_path / "plan.json"
    if edit is None:
        path.write_text(out[:40])
    else:
        edit(plan)
        path.write_text(json.dumps(plan))
    code, out, err = run(capsys, "generate", small_net, "--plan", path, *beside,
                         "-o", tmp_path / "out")
    assert code == 2 and out == "" and error in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command, module, owner, name, value, shown", [
    ("generate", "onespike.hdl.generate", "generate", "lanes", 37, "default 37"),
    ("generate", "onespike.hdl.generate", "generate", "coding", "dense", "default dense"),
    ("build", "onespike.boards.top", None, "DEFAULT_BAUD", 115_200, "default 115200"),
    ("run", "onespike.boards.top", None, "DEFAULT_BAUD", 115_200, "or 115200"),
    ("run", "onespike.boards.host", "BoardClient.__init__", "timeout", 7.5, "default 7.5"),
    ("report", "onespike.report", None, "REPORT_LANES", 37, "default 37"),
    ("report", "onespike.report", "write_report", "measure", 41, "default 41"),
    ("demo", "onespike.demo", "run_demo", "out", "elsewhere/demo", "default elsewhere/demo"),
    ("demo", "onespike.demo", "run_demo", "rtl_samples", 41, "default 41"),
    ("demo", "onespike.demo", "run_demo", "act_bits", 3, "default 3"),
    ("convert", "onespike.mapper", "convert_exported", "weight_bits", 6, "default 6"),
    ("prove", "onespike.sim.formal", "prove", "jobs", 41, "default 41"),
    ("prove", "onespike.sim.formal", "prove", "out", "elsewhere/prove",
     "default elsewhere/prove"),
    ("verify", "onespike.sim.verify", "verify", "interrupt_cycles", 41, "default 41"),
])
def test_defaults_shown_are_the_librarys(monkeypatch, capsys, command, module, owner, name,
                                         value, shown):
    """Each default is written once, in the library: change it there and the help follows."""
    import functools
    import importlib
    import inspect

    target = importlib.import_module(module)
    if owner is None:
        monkeypatch.setattr(target, name, value)
    else:
        function = functools.reduce(getattr, owner.split("."), target)
        if name in (function.__kwdefaults__ or {}):
            monkeypatch.setitem(function.__kwdefaults__, name, value)
        else:
            positional = [p.name for p in inspect.signature(function).parameters.values()
                          if p.default is not inspect.Parameter.empty
                          and p.kind != p.KEYWORD_ONLY]
            defaults = list(function.__defaults__)
            defaults[positional.index(name)] = value
            monkeypatch.setattr(function, "__defaults__", tuple(defaults))
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert shown in " ".join(capsys.readouterr().out.split())


def test_sequences_convert_simulate_and_info(capsys, tmp_path, torch):
    """A ReLU RNN (.pt2) takes (samples, steps, features) calibration and inputs; other
    shapes are one clear line."""
    import torch.nn as nn

    class Rows(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(3, 8, nonlinearity="relu", batch_first=True)
            self.out = nn.Linear(8, 4)

        def forward(self, x):
            return self.out(self.rnn(x)[1][-1])

    torch.manual_seed(0)
    x = np.random.default_rng(0).random((60, 5, 3)).astype(np.float32)
    model, path = Rows().eval(), tmp_path / "rnn.pt2"
    with pytest.warns(UserWarning):         # nn.RNN's flat weights, assigned while traced
        program = torch.export.export(model, (torch.as_tensor(x[:1]),))
    torch.export.save(program, path)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(60) % 4)
    np.save(tmp_path / "flat.npy", x[:, 0])
    net = tmp_path / "rnn.npz"
    code, out, _ = run(capsys, "convert", path, "--calib", tmp_path / "x.npy", "-o", net)
    assert code == 0 and "recurrent" in out and "sequence of 5 steps" in out
    code, out, _ = run(capsys, "info", net)
    assert code == 0 and "sequence of 5 steps: layers 0..0 run once per step" in out
    results = {}
    for coding in ("ttfs", "rate-bipolar"):
        code, out, _ = run(capsys, "simulate", net, "--inputs", tmp_path / "x.npy",
                           "--labels", tmp_path / "y.npy", "--code", coding, "--json")
        assert code == 0
        results[coding] = json.loads(out)
    assert results["rate-bipolar"]["guaranteed_exact"]
    assert results["rate-bipolar"]["accuracy"] == results["ttfs"]["accuracy"]
    code, out, _ = run(capsys, "simulate", net, "--inputs", tmp_path / "x.npy")
    assert code == 0 and "60 samples (sequences of 5 steps)" in out
    code, _, err = run(capsys, "convert", path, "--calib", tmp_path / "flat.npy", "-o",
                       tmp_path / "bad.npz")
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert "(samples, 5, 3) (samples, steps, features)" in err
    assert not (tmp_path / "bad.npz").exists()
    code, _, err = run(capsys, "simulate", net, "--inputs", tmp_path / "flat.npy")
    assert code != 0 and "the network expects (5, 3)" in err
