"""The input's bits measured on the calibration data: ``input_bits="auto"`` (the default of
``onespike convert``) takes the fewest that cost the float network nothing measurable, says
so, and ``--input-bits`` still pins them."""

import functools

import numpy as np
import pytest

from onespike.cli import main
from onespike.ir import load
from onespike.mapper import convert
from onespike.mapper.frontend import parse_module
from onespike.mapper.input_bits import TOLERANCE, input_costs
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
    """The rule, checked against costs measured here (the trained weights, hence the exact
    count, differ between CPUs; 4 bits cost this task about 3 % of its classes, 6 none),
    and held-out samples: the chosen bits change no more of the float network's classes
    than 8 bits (0.5 % slack), 4 bits do."""
    model, calib, x_test, y_test = standardized_mlp()
    notes = []
    net = convert(model, calib, input_bits="auto", notes=notes)
    bits = net.encoder.act_bits
    costs, samples = input_costs(*parse_module(model, calib[0]), calib, range(4, 9))
    allowed = costs[8] + int(TOLERANCE * samples)
    assert costs[bits] <= allowed and all(costs[b] > allowed for b in range(4, bits))
    assert bits > 4 and {l.act_bits for l in net.layers[:-1]} == {4}
    assert notes[0].startswith(f"input bits {bits}: the float network's class changes on "
                               f"quantized inputs for 4 bits {costs[4] / samples:.1%}, ")
    assert notes[0].endswith(f"of {samples} calibration samples (8 bits: "
                             f"{costs[8] / samples:.1%}); --input-bits N pins it")
    held_out, tests = input_costs(*parse_module(model, calib[0]), x_test, (4, bits, 8))
    assert held_out[bits] <= held_out[8] + 0.005 * tests < held_out[4]


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
    bits = load(tmp_path / "net.npz").encoder.act_bits
    assert bits > 4
    assert f"note: input bits {bits}: the float network's class changes" in \
        capsys.readouterr().out
    assert main(args + ["--input-bits", "4"]) == 0
    out = capsys.readouterr().out
    assert "input bits" not in out and "raise --input-bits" in out
