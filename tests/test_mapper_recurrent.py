"""Mapper on sequence models: nn.RNN, an nn.RNNCell loop and Linear layers in a loop map to
the same integer network; the integer recurrence tracks the float one; the rest is refused
with the module's name."""

import warnings

import numpy as np
import pytest

from onespike.errors import OnespikeError
from onespike.ir import Dense, Recurrent
from onespike.sim import closed_form, event_sim, first_mismatch

nn = pytest.importorskip("torch.nn")

FEATURES, HIDDEN, CLASSES, STEPS = 3, 6, 4, 5


def convert(model, calib, **kw):
    from onespike.mapper import convert as _convert
    return _convert(model, calib, **kw)


class Spelled(nn.Module):
    """One ReLU RNN (optionally a per-step Linear + ReLU before it, a ReLU Linear after it)
    written as ``nn.RNN``, as an ``nn.RNNCell`` loop or as two ``nn.Linear``s per layer in a
    loop, all with the parameters of ``reference``."""

    def __init__(self, reference, spelling, out, *, pre=None, post=None, last="h_n"):
        super().__init__()
        self.spelling, self.last, self.pre, self.post = spelling, last, pre, post
        self.layers, self.bias = reference.num_layers, reference.bias
        self.batch_first, self.out = reference.batch_first, out
        if spelling == "rnn":
            self.rnn = reference
            return
        cells = nn.ModuleList()
        for l in range(self.layers):
            size = reference.input_size if l == 0 else HIDDEN
            cell = nn.RNNCell(size, HIDDEN, bias=self.bias, nonlinearity="relu") \
                if spelling == "cell" else nn.ModuleDict(
                    {"x": nn.Linear(size, HIDDEN, bias=self.bias),
                     "h": nn.Linear(HIDDEN, HIDDEN, bias=self.bias)})
            for a, b in (("weight_ih", "x.weight"), ("weight_hh", "h.weight"),
                         ("bias_ih", "x.bias"), ("bias_hh", "h.bias")):
                if "bias" in a and not self.bias:
                    continue
                source = getattr(reference, f"{a}_l{l}")
                target = cell.get_parameter(a if spelling == "cell" else b)
                target.data = source.data.clone()
            cells.append(cell)
        self.cells = cells

    def forward(self, x):
        if self.pre is not None:
            x = self.pre(x).relu()
        if self.spelling == "rnn":
            out, h_n = self.rnn(x if self.batch_first else x.transpose(0, 1))
            h = h_n[-1] if self.last == "h_n" else (out[:, -1] if self.batch_first
                                                     else out[-1])
        else:
            hs = [x.new_zeros(x.shape[0], HIDDEN) for _ in self.cells]
            for t in range(x.shape[1]):
                frame = x[:, t]
                for l, cell in enumerate(self.cells):
                    hs[l] = cell(frame, hs[l]) if self.spelling == "cell" else \
                        (cell["x"](frame) + cell["h"](hs[l])).relu()
                    frame = hs[l]
            h = hs[-1]
        if self.post is not None:
            h = self.post(h).relu()
        return self.out(h)


def spellings(torch, *, layers=1, bias=True, batch_first=True, pre=False, post=False,
              seed=0):
    torch.manual_seed(seed)
    inputs = HIDDEN if pre else FEATURES
    rnn = nn.RNN(inputs, HIDDEN, num_layers=layers, bias=bias, batch_first=batch_first,
                 nonlinearity="relu")
    for name, p in rnn.named_parameters():           # a stable recurrence, biases > 0
        p.data = p.data * (0.6 if "hh" in name else 1.5) + (0.1 if "bias" in name else 0)
    out = nn.Linear(HIDDEN, CLASSES)
    first = nn.Linear(FEATURES, HIDDEN) if pre else None
    last = nn.Linear(HIDDEN, HIDDEN) if post else None
    return [Spelled(rnn, s, out, pre=first, post=last).eval()
            for s in ("rnn", "cell", "linear")]


def sequences(n=200, seed=1):
    return np.random.default_rng(seed).random((n, STEPS, FEATURES)) * 2 - 0.5


def float_logits(torch, model, x):
    with torch.no_grad():
        return model(torch.as_tensor(x, dtype=torch.float32)).numpy().astype(np.float64)


CONFIGS = [dict(layers=1, bias=True, batch_first=True),
           dict(layers=1, bias=False, batch_first=False),
           dict(layers=2, bias=True, batch_first=False),
           dict(layers=2, bias=False, batch_first=True),
           dict(layers=1, bias=True, batch_first=True, pre=True, post=True)]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(
    f"{k}{int(v)}" for k, v in c.items()))
def test_three_spellings_give_identical_integer_networks(torch, config):
    models = spellings(torch, **config)
    x = sequences()
    nets = [convert(m, x) for m in models]
    first = nets[0]
    kinds = ["dense"] * config.get("pre", False) + ["recurrent"] * config["layers"] \
        + ["dense"] * config.get("post", False) + ["dense"]
    assert [l.kind for l in first.layers] == kinds and first.steps == STEPS
    assert first.per_step_layers == config.get("pre", False) + config["layers"]
    for net in nets[1:]:
        assert net.header() == first.header()
        arrays = net.arrays()
        assert arrays.keys() == first.arrays().keys()
        for name, array in first.arrays().items():
            np.testing.assert_array_equal(arrays[name], array, err_msg=name)
    # the final state as h_n[-1] or as the output's last step: the same network
    other = Spelled(models[0].rnn, "rnn", models[0].out, pre=models[0].pre,
                    post=models[0].post, last="out").eval()
    for name, array in convert(other, x).arrays().items():
        np.testing.assert_array_equal(first.arrays()[name], array, err_msg=name)


@pytest.mark.parametrize("config", CONFIGS[2:], ids=["two-layers", "two-no-bias", "pre-post"])
def test_integer_recurrence_tracks_the_float_one(torch, config):
    # At 8-bit activations and 16-bit weights the integer logits, scaled back, follow the
    # float logits over all steps: a wrong state scale or a wrong recurrent step would not.
    model = spellings(torch, **config, seed=3)[0]
    x = sequences(300, seed=4)
    net = convert(model, x, act_bits=8, weight_bits=16)
    trace = closed_form(net, net.encoder.encode(x))
    got, want = trace.logits * net.layers[-1].scale, float_logits(torch, model, x)
    assert np.sqrt(np.mean((got - want) ** 2)) < 0.03 * want.std()
    assert np.mean(trace.classes == want.argmax(1)) >= 0.97
    small = net.encoder.encode(x[:20])
    assert first_mismatch(net, closed_form(net, small), event_sim(net, small)) is None


def test_mapper_integers_are_the_contract(torch):
    """The mapper's own integer forward pass (what it scores the balance with) is the golden
    model's closed form, state by state: h_t = clip(floor((w·x_t + u·h_{t−1} + b)/R), 0, A)."""
    from onespike.mapper.frontend import parse_module
    from onespike.mapper.quantize import _quantize

    model = spellings(torch, layers=2, pre=True, seed=5)[1]
    x = sequences(100, seed=6)
    shape, layers = parse_module(model, x[0])
    assert shape == (STEPS, FEATURES)
    for bits in (1, 3, 4):
        net, logits = _quantize(shape, layers, x, bits, 6, 0.5, bits)
        np.testing.assert_array_equal(closed_form(net, net.encoder.encode(x)).logits, logits)
        for layer in net.layers:
            if isinstance(layer, Recurrent):
                assert layer.ramp.min() >= 1 and np.abs(layer.recurrent).max() <= 31


def test_four_bits_keep_the_float_classes(torch):
    model = spellings(torch, layers=1, seed=7)[2]
    x = sequences(400, seed=8)
    net = convert(model, x)
    assert net.encoder.act_bits == 4 and isinstance(net.layers[0], Recurrent)
    assert isinstance(net.layers[1], Dense) and net.layers[1].is_readout
    agree = np.mean(closed_form(net, net.encoder.encode(x)).classes
                    == float_logits(torch, model, x).argmax(1))
    assert agree >= 0.9


class Loop(nn.Module):
    """Linear layers in a loop with a chosen activation and readout."""

    def __init__(self, activation=None, readout="last"):
        super().__init__()
        self.x, self.h = nn.Linear(FEATURES, HIDDEN), nn.Linear(HIDDEN, HIDDEN)
        self.out = nn.Linear(HIDDEN, CLASSES)
        self.activation, self.readout = activation, readout

    def forward(self, x):
        h, outs = x.new_zeros(x.shape[0], HIDDEN), []
        for t in range(x.shape[1]):
            sum_ = self.x(x[:, t]) + self.h(h)
            h = self.activation(sum_) if self.activation else sum_
            outs.append(h)
        if self.readout == "every":
            return self.out(torch_stack(outs))
        return self.out(h if self.readout == "last" else outs[0])


def torch_stack(values):
    import torch
    return torch.stack(values, 1)


class NonZeroState(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(FEATURES, HIDDEN, nonlinearity="relu", batch_first=True)
        self.h0 = nn.Parameter(nn.init.uniform_(__import__("torch").empty(1, 1, HIDDEN)))
        self.out = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x):
        return self.out(self.rnn(x, self.h0)[1][-1])


class Wrapped(nn.Module):
    def __init__(self, rnn, every=False):
        super().__init__()
        width = HIDDEN * (1 + getattr(rnn, "bidirectional", False))
        self.rnn, self.out, self.every = rnn, nn.Linear(width, CLASSES), every

    def forward(self, x):
        out = self.rnn(x)[0]
        return self.out(out if self.every else out[:, -1])


@pytest.mark.parametrize("model, message", [
    (lambda: Wrapped(nn.RNN(FEATURES, HIDDEN, batch_first=True)),
     r"'rnn' \(RNN\): a tanh RNN is not supported"),
    (lambda: Wrapped(nn.LSTM(FEATURES, HIDDEN, batch_first=True)),
     r"'rnn' \(LSTM\): an LSTM is not supported"),
    (lambda: Wrapped(nn.GRU(FEATURES, HIDDEN, batch_first=True)),
     r"'rnn' \(GRU\): a GRU is not supported"),
    (lambda: Wrapped(nn.RNN(FEATURES, HIDDEN, nonlinearity="relu", batch_first=True,
                            bidirectional=True)),
     r"'rnn' \(RNN\): a bidirectional RNN is not supported"),
    (lambda: Wrapped(nn.RNN(FEATURES, HIDDEN, nonlinearity="relu", batch_first=True),
                     every=True), "outputs at every step are not supported"),
    (lambda: Loop(lambda s: s.relu(), readout="every"), "outputs at every step are not supported"),
    (lambda: Loop(lambda s: s.relu(), readout="first"), "reads step 0, not the last"),
    (lambda: Loop(lambda s: s.tanh()), r"aten.tanh.default after a Linear layer; .* a state "
                                       r"is fed back through a ReLU only"),
    (lambda: Loop(lambda s: s.sigmoid()), "a state is fed back through a ReLU only"),
    (lambda: Loop(None), r"'h' \(Linear\) follows a Linear layer without a ReLU"),
    (lambda: NonZeroState(), r"'rnn' \(RNN\): the initial state must be zeros"),
])
def test_unsupported_recurrences_are_named(torch, model, message):
    with pytest.raises(OnespikeError, match=message):
        convert(model().eval(), sequences(8))


def test_dropout_between_layers_in_training_mode(torch):
    from onespike.mapper import parse_exported

    rnn = nn.RNN(FEATURES, HIDDEN, num_layers=2, dropout=0.3, nonlinearity="relu",
                 batch_first=True)
    model = Wrapped(rnn)
    x = torch.as_tensor(sequences(1), dtype=torch.float32)
    with pytest.warns(UserWarning):
        program = torch.export.export(model.train(), (x,))
    with pytest.raises(OnespikeError, match=r"'rnn' \(RNN\): dropout between RNN layers is in "
                                            r"training mode"):
        parse_exported(program)
    assert len(convert(model.eval(), sequences(50)).layers) == 3      # fine in eval mode


def test_calibration_must_be_sequences(torch):
    model = spellings(torch)[0]
    with pytest.raises(OnespikeError, match=r"a sequence model takes inputs \(batch, steps, "
                                            r"features\), not \(1, 3\)"):
        convert(model, np.zeros((8, FEATURES)))
    from onespike.mapper.frontend import parse_module
    from onespike.mapper.quantize import quantize

    shape, layers = parse_module(model, sequences(1)[0])
    with pytest.raises(OnespikeError, match=r"expects \(samples, 5, 3\) \(samples, steps, "
                                            r"features\)"):
        quantize(shape, layers, np.zeros((8, 4, FEATURES)))


# -- the CRNN shape: 1-D convolutions over each step's features before the recurrence ------

LENGTH, CHANNELS = 8, 3


class CRNN(nn.Module):
    """Conv1d (+ BatchNorm1d) → ReLU → pooling on each step's features, then a ReLU RNN;
    spelled with the steps folded into the batch (``reshape``, or ``time-major`` through a
    transpose), or per step in a loop (``x[:, t].unsqueeze(1)`` with an ``nn.RNNCell``,
    ``x[:, t:t + 1]`` with two Linears). Every spelling takes the parameters of one model."""

    def __init__(self, spelling, pool="max", seed=0):
        super().__init__()
        import torch

        torch.manual_seed(seed)
        self.spelling, self.pool = spelling, pool
        self.conv, self.bn = nn.Conv1d(1, CHANNELS, 3, padding=1), nn.BatchNorm1d(CHANNELS)
        self.rnn = nn.RNN(CHANNELS * LENGTH // 2, HIDDEN, nonlinearity="relu",
                          batch_first=spelling != "time-major")
        self.out = nn.Linear(HIDDEN, CLASSES)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.2, 0.2)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.uniform_(0.5, 1.5)
            self.rnn.weight_hh_l0.mul_(0.6)
        if spelling == "loop":
            self.cell = nn.RNNCell(CHANNELS * LENGTH // 2, HIDDEN, nonlinearity="relu")
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(self.cell, name).data = getattr(self.rnn, f"{name}_l0").data.clone()

    def features(self, frames):
        y = self.bn(self.conv(frames)).relu()
        pool = nn.functional.max_pool1d if self.pool == "max" else nn.functional.avg_pool1d
        return pool(y, 2)

    def forward(self, x):
        batch, steps = x.shape[:2]
        if self.spelling == "reshape":
            y = self.features(x.reshape(batch * steps, 1, LENGTH)).reshape(batch, steps, -1)
            return self.out(self.rnn(y)[1][-1])
        if self.spelling == "time-major":
            y = self.features(x.transpose(0, 1).reshape(steps * batch, 1, LENGTH))
            return self.out(self.rnn(y.reshape(steps, batch, -1))[0][-1])
        h = x.new_zeros(batch, HIDDEN)
        for t in range(steps):
            if self.spelling == "loop":
                h = self.cell(self.features(x[:, t].unsqueeze(1)).flatten(1), h)
            else:                                               # "slice": Linear layers
                frame = self.features(x[:, t:t + 1]).flatten(1)
                h = (nn.functional.linear(frame, self.rnn.weight_ih_l0, self.rnn.bias_ih_l0)
                     + nn.functional.linear(h, self.rnn.weight_hh_l0,
                                            self.rnn.bias_hh_l0)).relu()
        return self.out(h)


CRNN_SPELLINGS = ("reshape", "time-major", "loop", "slice")


def signals(n=200, seed=1):
    return np.random.default_rng(seed).random((n, STEPS, LENGTH)) * 2 - 0.5


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_crnn_spellings_give_identical_integer_networks(torch, pool):
    # average pooling before the recurrence is folded into its input weights (a recurrent
    # layer takes no sum pooling); max pooling stays a layer of its own
    x = signals()
    models = [CRNN(s, pool).eval() for s in CRNN_SPELLINGS]
    want = float_logits(torch, models[0], x)
    for model in models[1:]:
        np.testing.assert_allclose(float_logits(torch, model, x), want, atol=1e-5)
    nets = [convert(m, x, act_bits=8, weight_bits=16) for m in models]
    first = nets[0]
    kinds = ["conv"] + ["maxpool"] * (pool == "max") + ["recurrent", "dense"]
    assert [l.kind for l in first.layers] == kinds and first.per_step_layers == len(kinds) - 1
    assert first.encoder.shape == (1, 1, LENGTH) and first.steps == STEPS
    for net in nets[1:]:
        assert net.header() == first.header()
        for name, array in first.arrays().items():
            np.testing.assert_array_equal(net.arrays()[name], array, err_msg=name)
    # the integer network follows the float one; the network takes each step as (1, L)
    a0 = first.encoder.encode(x.reshape(len(x), STEPS, 1, LENGTH))
    trace = closed_form(first, a0)
    got = trace.logits * first.layers[-1].scale
    assert np.sqrt(np.mean((got - want) ** 2)) < 0.03 * want.std()
    assert np.mean(trace.classes == want.argmax(1)) >= 0.97
    assert first_mismatch(first, closed_form(first, a0[:20]), event_sim(first, a0[:20])) is None


class Grouped(nn.Module):
    """Each step's features as 2 channels of 4 (a model on (batch, steps, 2, 4) or on flat
    steps it reshapes), two convolutions, a global mean, a per-step Linear, an RNN."""

    def __init__(self, flat):
        super().__init__()
        import torch

        torch.manual_seed(2)
        self.flat = flat
        self.c1, self.c2 = nn.Conv1d(2, 4, 3, padding=1), nn.Conv1d(4, 4, 1)
        self.fc, self.rnn = nn.Linear(4, 5), nn.RNN(5, HIDDEN, nonlinearity="relu",
                                                    batch_first=True)
        self.out = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x):
        batch, steps = x.shape[:2]
        y = self.c2(self.c1(x.reshape(batch * steps, 2, 4)).relu()).relu().mean(-1)
        return self.out(self.rnn(self.fc(y).relu().reshape(batch, steps, -1))[0][:, -1])


def test_crnn_frames_of_channels_and_the_convert_note(torch):
    x = signals(150, seed=3)
    notes = []
    flat = convert(Grouped(True).eval(), x, notes=notes)
    assert [l.kind for l in flat.layers] == ["conv", "conv", "dense", "recurrent", "dense"]
    assert flat.encoder.shape == (2, 1, 4)
    assert notes[0] == ("the network takes each step as the (2, 4) map its first "
                        "convolution reads: feed it x.reshape(len(x), 5, 2, 4)")
    shaped = convert(Grouped(False).eval(), x.reshape(150, STEPS, 2, 4), notes=(none := []))
    assert not none[0].startswith("the network takes")
    for name, array in flat.arrays().items():
        np.testing.assert_array_equal(shaped.arrays()[name], array, err_msg=name)
    a0 = flat.encoder.encode(x.reshape(150, STEPS, 2, 4))
    assert np.mean(closed_form(flat, a0).classes
                   == float_logits(torch, Grouped(True).eval(), x).argmax(1)) >= 0.9
    assert first_mismatch(flat, closed_form(flat, a0[:20]), event_sim(flat, a0[:20])) is None


def test_crnn_with_a_dynamic_batch(torch):
    from onespike.mapper import parse_exported
    from onespike.mapper.frontend import parse_module

    model = CRNN("reshape", "avg").eval()
    example = torch.zeros(3, STEPS, LENGTH)
    with warnings.catch_warnings():     # nn.RNN re-assigns its flat weights while traced
        warnings.filterwarnings("ignore", "The tensor attributes", UserWarning)
        program = torch.export.export(model, (example,),
                                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    shape, layers = parse_exported(program)
    want_shape, want = parse_module(model, signals(1)[0])
    assert shape == want_shape == (STEPS, 1, 1, LENGTH)
    for got, layer in zip(layers, want, strict=True):
        np.testing.assert_array_equal(got.weight, layer.weight)


class Refused(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.conv = nn.Conv1d({"time": LENGTH, "steps": STEPS}.get(kind, 1), CHANNELS, 3,
                              padding=1)
        self.bn = nn.BatchNorm1d(CHANNELS)
        size = {"time": CHANNELS, "steps": LENGTH, "folded": LENGTH}.get(kind,
                                                                          CHANNELS * LENGTH)
        self.rnn = nn.RNN(size, HIDDEN, nonlinearity="relu", batch_first=True)
        self.out = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x):
        b, t = x.shape[:2]
        if self.kind == "time":          # a convolution over the steps
            y = self.conv(x.transpose(1, 2)).relu().transpose(1, 2)
        elif self.kind == "steps":       # the steps taken as channels
            y = self.conv(x).relu()
        elif self.kind == "folded":      # never reshaped back to (batch, steps, features)
            y = self.conv(x.reshape(b * t, 1, LENGTH)).relu()
        elif self.kind == "mixed":
            y = self.conv(x.reshape(b * t, 1, LENGTH)).relu().reshape(b, t * CHANNELS, LENGTH)
            y = y.reshape(b, t, -1)
        elif self.kind == "pool-first":
            y = nn.functional.max_pool1d(self.conv(x.reshape(b * t, 1, LENGTH)), 1).relu()
            y = y.reshape(b, t, -1)
        else:                            # "norm-after-relu"
            y = self.bn(self.conv(x.reshape(b * t, 1, LENGTH)).relu()).reshape(b, t, -1)
        return self.out(self.rnn(y)[1][-1])


@pytest.mark.parametrize("kind, message", [
    ("time", r"^'conv' \(Conv1d\): convolves over the sequence's steps \(its input is \(batch, "
             r"features, steps\)\); the recurrence needs per-step inputs: convolve each "
             r"step's features, x.reshape\(B \* T, C, F // C\) → Conv1d → .reshape\(B, T, -1\) "
             r"→ nn.RNN \(or the convolution on x\[:, t\].unsqueeze\(1\) in the loop\)$"),
    ("steps", r"'conv' \(Conv1d\): convolves a whole sequence \(batch, steps, ...\), its "
              r"steps as channels; the recurrence needs per-step inputs"),
    ("folded", r"'rnn' \(RNN\): its input has the steps folded into the batch .*"
               r"reshape it back to \(batch, steps, features\) first"),
    ("mixed", r"reshapes the sequence \(5, 3, 8\) to \(1, 15, 8\), which mixes its steps"),
    ("pool-first", r"max-pools the output of 'conv' \(Conv1d\) before its ReLU; put the ReLU "
                   r"first"),
    ("norm-after-relu", r"'bn' \(BatchNorm1d\): batch norm must follow a per-step "
                        r"convolution or Linear layer directly"),
], ids=lambda v: v if " " not in v else "")
def test_unsupported_crnn_shapes_are_named(torch, kind, message):
    with pytest.raises(OnespikeError, match=message):
        convert(Refused(kind).eval(), signals(8))
