"""Mapper: every supported layer is mapped faithfully; bad input is refused clearly."""

import numpy as np
import pytest

from onespike.errors import OnespikeError
from onespike.sim import closed_form, event_sim, first_mismatch

nn = pytest.importorskip("torch.nn")


def convert(model, calib, **kw):
    from onespike.mapper import convert as _convert
    return _convert(model, calib, **kw)


def float_logits(torch, model, x):
    with torch.no_grad():
        return model(torch.as_tensor(x, dtype=torch.float32)).numpy().astype(np.float64)


def random_cnn(torch, seed):
    g = np.random.default_rng(seed)
    c1, c2 = int(g.integers(1, 6)), int(g.integers(1, 7))
    k1, k2 = int(g.integers(1, 6)), int(g.integers(1, 4))
    s1 = int(g.integers(1, 3))
    p1, p2 = int(g.integers(0, min(2, k1 - 1) + 1)), int(g.integers(0, min(2, k2 - 1) + 1))
    layers = [nn.Conv2d(2, c1, k1, stride=s1, padding=p1), nn.BatchNorm2d(c1), nn.ReLU()]
    if g.random() < 0.5:
        layers.append(nn.MaxPool2d(2, padding=int(g.integers(0, 2))))
    layers += [nn.Conv2d(c1, c2, k2, padding=p2), nn.ReLU()]
    if g.random() < 0.5:
        layers.append(nn.AvgPool2d(2))
    layers += [nn.Flatten(), nn.LazyLinear(7), nn.ReLU(), nn.Dropout(0.2), nn.Linear(7, 5)]
    torch.manual_seed(seed)
    model = nn.Sequential(*layers)
    model(torch.zeros(1, 2, 11, 13))  # materialize LazyLinear
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    return model.eval()


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("inputs", ["unit", "normalized"])
def test_random_cnn_logits_track_the_float_model(torch, seed, inputs):
    # At 8-bit activations and 16-bit weights the integer logits, scaled back, must follow
    # the float logits closely: a wrong fold (BN, pooling, padding, offset) would not.
    model = random_cnn(torch, seed)
    g = np.random.default_rng(100 + seed)
    x = g.random((300, 2, 11, 13))
    if inputs == "normalized":
        x = (x - 0.4) / 0.3
    net = convert(model, x, act_bits=8, weight_bits=16)
    trace = closed_form(net, net.encoder.encode(x))
    got = trace.logits * net.layers[-1].scale
    want = float_logits(torch, model, x)
    spread = want.std()
    assert np.sqrt(np.mean((got - want) ** 2)) < 0.05 * spread + 1e-9
    small = net.encoder.encode(x[:20])
    assert first_mismatch(net, closed_form(net, small), event_sim(net, small)) is None


def test_normalized_input_with_padding_gets_position_dependent_bias(torch):
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(48, 4)).eval()
    x = (np.random.default_rng(0).random((64, 1, 4, 4)) - 0.5) * 4  # negative inputs
    net = convert(model, x, act_bits=8, weight_bits=16)
    assert net.layers[0].bias.shape == (3, 4, 4)
    assert net.encoder.offset[0] < 0
    got = closed_form(net, net.encoder.encode(x)).logits * net.layers[-1].scale
    want = float_logits(torch, model, x)
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()


def test_mlp_without_offset_keeps_per_channel_bias(torch, digits_mlp):
    model, data = digits_mlp
    net = convert(model, data.x_train)
    assert not net.encoder.offset.any()          # raw pixels: no offset to fold
    assert net.layers[0].bias.shape == (64,)
    assert all(l.ramp.min() >= 1 for l in net.layers[:-1])


@pytest.mark.parametrize("model, message", [
    (lambda: nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2)),
     r"unsupported layer '1' \(Sigmoid\)"),
    (lambda: nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.BatchNorm1d(4)),
     "batch norm after the readout"),
    (lambda: nn.Sequential(nn.Linear(4, 4), nn.ReLU6(), nn.ReLU(), nn.Linear(4, 2)),
     "two activations in a row"),
    (lambda: nn.Sequential(nn.Linear(4, 4), nn.Hardtanh(-1, 1), nn.Linear(4, 2)),
     r"a clamp to \[-1, 1\] is not a ReLU"),
    (lambda: nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2), nn.Softmax(1)),
     "remove the softmax"),
    (lambda: nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), "without a ReLU"),
    (lambda: nn.Sequential(nn.Linear(4, 4), nn.ReLU()), "ends with a ReLU"),
])
def test_unsupported_structures_are_named(torch, model, message):
    with pytest.raises(OnespikeError, match=message):
        convert(model().eval(), np.ones((8, 4)))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):
        h = self.a(x).relu()
        return self.b(h + x)


class ResidualBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4)
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        h = self.act(self.fc1(x))
        return self.out(nn.functional.relu(self.fc2(h)) + h)


def test_residual_is_refused_naming_where_it_branches(torch):
    """The refusal names the operation whose output branches and what it feeds, a
    submodule by its path, an operation written in ``forward`` by itself."""
    with pytest.raises(OnespikeError, match=r"the output of the input 'x' feeds 2 operations "
                                            r"\('a' \(Linear\), torch.add 'add' in "
                                            r"Residual.forward\); only a plain chain"):
        convert(Residual().eval(), np.ones((8, 4)))
    with pytest.raises(OnespikeError, match=r"the output of 'act' \(ReLU\) feeds 2 "
                                            r"operations \('fc2' \(Linear\), torch.add"):
        convert(ResidualBlock().eval(), np.ones((8, 4)))


def test_nan_weight_and_bad_calibration(torch):
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    with pytest.raises(OnespikeError, match=r"samples of shape \(5,\) do not fit the model"):
        convert(model, np.ones((8, 5)))
    with pytest.raises(OnespikeError, match="calibration data contains NaN"):
        convert(model, np.full((8, 4), np.nan))
    with pytest.raises(OnespikeError, match="act_bits must be an integer from 1 to 8"):
        convert(model, np.ones((8, 4)), act_bits=9)
    with pytest.raises(OnespikeError, match="weight_bits must be an integer from 2 to 16"):
        convert(model, np.ones((8, 4)), weight_bits=1)
    with torch.no_grad():
        model[0].weight[1, 2] = float("nan")
    with pytest.raises(OnespikeError, match=r"'0' \(Linear\): parameters contain NaN"):
        convert(model, np.ones((8, 4)))


def _same_arrays(a, b):
    arrays_a, arrays_b = a.arrays(), b.arrays()
    assert arrays_a.keys() == arrays_b.keys()
    assert all(np.array_equal(v, arrays_b[k]) for k, v in arrays_a.items())


def _twin(padded, plain, x):
    """``plain`` with ``padded``'s parameters (state dicts in layer order)."""
    params = [p for m in padded if list(m.parameters()) for p in m.state_dict().values()]
    keys = [k for k in plain.state_dict()]
    plain.load_state_dict(dict(zip(keys, params)))
    return convert(padded.eval(), x), convert(plain.eval(), x)


def test_zero_padding_folds_into_the_next_convolution(torch):
    """``nn.ZeroPad2d``/``ConstantPad1d(p, 0)`` (and ``F.pad``) before a convolution: its
    padding, at the input and after a ReLU; the IR equals the padded convolution's."""
    torch.manual_seed(0)
    x = torch.rand(40, 1, 8, 8).numpy()
    padded = nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(1, 4, 3), nn.ReLU(), nn.ZeroPad2d(1),
                           nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                           nn.Linear(400, 3))
    plain = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(4, 4, 3, padding=2), nn.ReLU(), nn.Flatten(),
                          nn.Linear(400, 3))
    a, b = _twin(padded, plain, x)
    assert [l.padding for l in a.layers[:2]] == [(1, 1), (2, 2)]
    _same_arrays(a, b)
    signal = torch.rand(40, 2, 10).numpy()
    a, b = _twin(nn.Sequential(nn.ConstantPad1d(2, 0.0), nn.Conv1d(2, 3, 5), nn.ReLU(),
                               nn.Flatten(), nn.Linear(30, 2)),
                 nn.Sequential(nn.Conv1d(2, 3, 5, padding=2), nn.ReLU(), nn.Flatten(),
                               nn.Linear(30, 2)), signal)
    assert a.layers[0].padding == (0, 2)
    _same_arrays(a, b)


@pytest.mark.parametrize("pad, message", [
    ("asymmetric", r"padding \[1, 0, 1, 1\] .* is not the same on both sides"),
    ("value", "padding with 0.5; only zero padding"),
    ("reflect", "reflect padding; only zero padding"),
    ("before a pool", r"'3' \(MaxPool2d\) follows a zero padding")])
def test_padding_that_does_not_fold_is_refused(torch, pad, message):
    import torch.nn.functional as F

    class Padded(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.out = nn.Conv2d(1, 2, 3), nn.Linear(2, 2)

        def forward(self, x):
            x = {"asymmetric": lambda: F.pad(x, (1, 0, 1, 1)),
                 "value": lambda: F.pad(x, (1, 1, 1, 1), value=0.5),
                 "reflect": lambda: F.pad(x, (1, 1, 1, 1), mode="reflect")}[pad]()
            return self.out(self.conv(x).relu().mean((2, 3)))

    model = Padded() if pad != "before a pool" else nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.ZeroPad2d(1), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(2 * 9, 2))
    with pytest.raises(OnespikeError, match=message):
        convert(model.eval(), torch.rand(10, 1, 6, 6).numpy())


def test_adaptive_max_pooling_by_an_integer_factor_is_a_max_pool(torch):
    torch.manual_seed(1)
    x = torch.rand(40, 1, 8, 8).numpy()
    a, b = _twin(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveMaxPool2d(3),
                               nn.Flatten(), nn.Linear(36, 3)),
                 nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                               nn.Linear(36, 3)), x)
    assert (a.layers[1].kernel, a.layers[1].stride) == ((2, 2), (2, 2))
    _same_arrays(a, b)
    with pytest.raises(OnespikeError, match=r"adaptive pooling \(6, 6\) → \(4, 4\) is not an "
                                            r"integer factor"):
        convert(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveMaxPool2d(4),
                              nn.Flatten(), nn.Linear(64, 3)).eval(), x)
