"""Models written the way people write them: subclassed modules, functional calls,
Sequential, inplace ReLUs, ReLU spellings, bias-free layers, odd sizes, batch norm in every
place, raw, scaled and per-feature standardized inputs, global pooling, a convolution readout,
1-D convolutions over signals (audio, ECG and vibration models), rectangular kernels.

Each is trained briefly on sklearn's digits, converted through the API (and the command line
for one of each kind), checked spike for spike between the event simulation and the
integer network, held against its float accuracy, and run through `verify` in RTL on a few
samples. The refusals that remain are checked for their message.
"""

import functools

import numpy as np
import pytest

from onespike import zoo
from onespike.cli import main
from onespike.errors import OnespikeError
from onespike.sim import closed_form, event_sim, first_mismatch
from onespike.sim.verify import stimulus, verify

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

# spiking accuracy may fall below float by at most this much at 4/8 bits (the aim is
# 0.5 points on average; one brief training run on 450 test images moves by 0.2 per image)
TOLERANCE = 0.012


class Functional(nn.Module):
    """A subclassed MLP with the activation as a function call."""

    def __init__(self, activation):
        super().__init__()
        self.a, self.b, self.activation = nn.Linear(64, 40), nn.Linear(40, 10), activation

    def forward(self, x):
        return self.b(self.activation(self.a(x)))


class SmallCnn(nn.Module):
    """conv–ReLU–pool stem, then a head given as a function of the feature map."""

    def __init__(self, head, channels=8, readout=None):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.head, self.readout = head, readout or nn.Linear(channels, 10)

    def forward(self, x):
        return self.head(self, F.max_pool2d(F.relu(self.conv(x)), 2))


def global_mean(self, x):
    return self.readout(x.mean((2, 3)))


def adaptive(self, x):
    return self.readout(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def bn_after_relu(self, x):
    return self.readout(torch.flatten(self.bn(x), 1))


def conv_readout(self, x):
    return torch.flatten(self.readout(x), 1)


class SignalNet(nn.Module):
    """A keyword-spotting-style 1-D CNN over 8 channels (the digit's rows) of length 8:
    ``padding="same"``, batch norm, global mean over time."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(8, 16, 3, padding="same")
        self.bn = nn.BatchNorm1d(16)
        self.conv2 = nn.Conv1d(16, 16, 3, stride=2)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.conv1(x)))
        return self.fc(F.relu(self.conv2(x)).mean(-1))


def mlp(*sizes, bias=True, relu=lambda: nn.ReLU(inplace=True), bn=None):
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(sizes) - 2:
            if bn == "before":
                layers.append(nn.BatchNorm1d(b))
            layers.append(relu())
            if bn == "after":
                layers.append(nn.BatchNorm1d(b))
            layers.append(nn.Dropout(0.1))
    return nn.Sequential(*layers)


# name → (model factory, inputs: "raw" | "scaled" | "standardized" | "image" | "image-norm")
MODELS = {
    "sequential-inplace-relu": (lambda: mlp(64, 48, 10), "raw"),
    "functional-relu": (lambda: Functional(F.relu), "raw"),
    "clamp-min": (lambda: Functional(lambda x: x.clamp(min=0)), "scaled"),
    "clamp-min-function": (lambda: Functional(lambda x: torch.clamp_min(x, 0)), "raw"),
    "threshold": (lambda: Functional(lambda x: F.threshold(x, 0.0, 0.0)), "raw"),
    "relu6": (lambda: mlp(64, 48, 10, relu=nn.ReLU6), "scaled"),
    "hardtanh-0-4": (lambda: mlp(64, 48, 10, relu=lambda: nn.Hardtanh(0.0, 4.0)), "scaled"),
    "clamp-0-3": (lambda: Functional(lambda x: x.clamp(0, 3)), "scaled"),
    "bias-free": (lambda: mlp(64, 40, 10, bias=False), "raw"),
    "batchnorm-before-relu": (lambda: mlp(64, 40, 10, bn="before"), "raw"),
    "batchnorm-after-relu": (lambda: mlp(64, 40, 10, bn="after"), "raw"),
    "batchnorm-at-input": (lambda: nn.Sequential(nn.BatchNorm1d(64), *mlp(64, 40, 10)), "raw"),
    "standardized-inputs": (lambda: mlp(64, 48, 10), "standardized"),
    "odd-sizes": (lambda: mlp(64, 37, 23, 10), "scaled"),
    "deep-narrow": (lambda: mlp(64, 24, 24, 24, 10), "scaled"),
    "cnn-sequential": (lambda: nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(72, 10)),
        "image"),
    "cnn-global-mean": (lambda: SmallCnn(global_mean, channels=16), "image"),
    "cnn-adaptive-avg-pool": (lambda: SmallCnn(adaptive, channels=16), "image-norm"),
    "cnn-batchnorm-after-relu": (lambda: SmallCnn(bn_after_relu, channels=4,
                                                  readout=nn.Linear(64, 10)), "image"),
    "cnn-conv-readout": (lambda: SmallCnn(conv_readout, readout=nn.Conv2d(8, 10, 4)), "image"),
    "cnn-avgpool-normalized": (lambda: nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(96, 10)), "image-norm"),
    "cnn-rectangular-kernels": (lambda: nn.Sequential(                       # 1×8×8
        nn.Conv2d(1, 8, (3, 1), padding=(1, 0)), nn.ReLU(),                   # 8×8×8
        nn.Conv2d(8, 8, (1, 3), stride=(1, 2)), nn.ReLU(),                    # 8×8×3
        nn.MaxPool2d((2, 1)), nn.Flatten(), nn.Linear(96, 10)), "image"),     # 8×4×3
    "conv1d-signal": (lambda: nn.Sequential(                                  # 1×64
        nn.Conv1d(1, 8, 5, stride=2, padding=2), nn.BatchNorm1d(8), nn.ReLU(),  # 8×32
        nn.MaxPool1d(2), nn.Conv1d(8, 16, 3, padding=1), nn.ReLU(),           # 16×16
        nn.AvgPool1d(2), nn.Flatten(), nn.Linear(128, 10)), "signal"),        # 16×8
    "conv1d-rows-global-mean": (SignalNet, "rows"),
}


# models whose features are globally pooled learn slowly at the default rate (a 12-epoch
# run left them near chance, which would make their accuracy check say nothing)
FAST = {"cnn-global-mean", "cnn-adaptive-avg-pool", "conv1d-rows-global-mean"}


@functools.cache
def dataset(kind):
    if kind.startswith("image"):
        return zoo.digits(image=True, normalize=kind == "image-norm")
    data = zoo.digits()
    if kind in ("signal", "rows"):      # (1, 64): one channel; (8, 8): a channel per row
        shape = (1, 64) if kind == "signal" else (8, 8)
        return zoo.Dataset("digits", data.x_train.reshape(-1, *shape) / 16, data.y_train,
                           data.x_test.reshape(-1, *shape) / 16, data.y_test)
    if kind == "scaled":
        return zoo.Dataset("digits", data.x_train / 16, data.y_train, data.x_test / 16,
                           data.y_test)
    if kind == "standardized":          # sklearn's StandardScaler, per feature
        mean, std = data.x_train.mean(0), data.x_train.std(0)
        std = np.where(std > 0, std, 1.0)
        return zoo.Dataset("digits", (data.x_train - mean) / std, data.y_train,
                           (data.x_test - mean) / std, data.y_test)
    return data


@functools.cache
def trained(name):
    factory, kind = MODELS[name]
    torch.manual_seed(0)
    data = dataset(kind)
    epochs = 20 if kind in ("raw", "scaled", "standardized") or name in FAST else 12
    model = zoo.train(factory(), data, epochs=epochs, lr=1e-2 if name in FAST else 2e-3)
    return model, data


# one of each kind in the default run; the whole set with `make test-all`
QUICK = {"functional-relu", "relu6", "batchnorm-after-relu", "standardized-inputs",
         "cnn-conv-readout", "cnn-global-mean", "conv1d-signal", "cnn-rectangular-kernels"}


def test_the_set_is_broad():
    assert len(MODELS) >= 20 and QUICK <= set(MODELS)


@pytest.mark.parametrize("name", [n if n in QUICK else pytest.param(n, marks=pytest.mark.slow)
                                  for n in sorted(MODELS)])
def test_model_converts_exactly_and_keeps_its_accuracy(name, build_root):
    from onespike.mapper import convert

    model, data = trained(name)
    model.train()                       # the caller's mode must survive the conversion
    net = convert(model, data.x_train)
    assert model.training
    model.eval()
    a0 = net.encoder.encode(data.x_test)
    golden = closed_form(net, a0)
    assert first_mismatch(net, golden, event_sim(net, a0)) is None
    float_acc = zoo.float_accuracy(model, data.x_test, data.y_test)
    assert float_acc >= 0.7, f"the float model did not learn ({float_acc:.4f})"
    spiking = float(np.mean(golden.classes == data.y_test))
    assert spiking >= float_acc - TOLERANCE, f"float {float_acc:.4f}, spiking {spiking:.4f}"
    result = verify(net, stimulus(net, data.x_test, 2), lanes=4, build_root=build_root,
                    idle=0.2, backpressure=0.3, progress=False)
    assert result["mismatches"] == 0, result["first_mismatch"]


@pytest.mark.parametrize("name", ["functional-relu", "relu6", "cnn-conv-readout",
                                  "standardized-inputs", "conv1d-rows-global-mean"])
def test_model_converts_through_the_command_line(name, tmp_path, capsys):
    model, data = trained(name)
    example = torch.as_tensor(data.x_train[:1], dtype=torch.float32)
    torch.export.save(torch.export.export(model.eval(), (example,)), tmp_path / "m.pt2")
    np.save(tmp_path / "calib.npy", data.x_train)
    np.save(tmp_path / "x.npy", data.x_test)
    np.save(tmp_path / "y.npy", data.y_test)
    assert main(["convert", str(tmp_path / "m.pt2"), "--calib", str(tmp_path / "calib.npy"),
                 "-o", str(tmp_path / "net.npz")]) == 0
    assert main(["simulate", str(tmp_path / "net.npz"), "--inputs", str(tmp_path / "x.npy"),
                 "--labels", str(tmp_path / "y.npy")]) == 0
    assert "accuracy" in capsys.readouterr().out


def test_dynamic_batch_view_converts():
    """``x.view(x.size(0), -1)`` exported with a dynamic batch: the size query is not a
    branch of the chain."""
    from onespike.mapper import parse_exported, quantize

    class ViewNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(144, 10)

        def forward(self, x):
            return self.fc(F.relu(self.conv(x)).view(x.size(0), -1))

    data = dataset("image")
    batch = torch.export.Dim("batch", min=2)
    program = torch.export.export(ViewNet().eval(), (torch.zeros(4, 1, 8, 8),),
                                  dynamic_shapes=({0: batch},))
    shape, layers = parse_exported(program)
    net = quantize(shape, layers, data.x_train[:100])
    assert shape == (1, 8, 8) and [l.kind for l in net.layers] == ["conv", "dense"]


def test_standardized_inputs_get_per_feature_scales():
    model, data = trained("standardized-inputs")
    from onespike.mapper import convert

    net = convert(model, data.x_train)
    assert net.encoder.scale.shape == (64,) and net.encoder.offset.shape == (64,)


class LinearOnImage(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 16), nn.Linear(128, 10)

    def forward(self, x):
        return self.b(torch.flatten(F.relu(self.a(x)), 1))


@pytest.mark.parametrize("factory, shape, message", [
    (LinearOnImage, (1, 8, 8), "acts on its last axis only; flatten the map first"),
    (lambda: nn.Sequential(nn.Linear(64, 8), nn.Sigmoid(), nn.Linear(8, 10)), (64,),
     r"unsupported layer '1' \(Sigmoid\)"),
    (lambda: nn.Sequential(nn.Conv1d(1, 4, 4, padding="same"), nn.ReLU(), nn.Flatten(),
                           nn.Linear(32, 10)), (1, 8), "padding='same' with an even kernel"),
    (lambda: nn.Sequential(nn.Conv1d(1, 4, 3, dilation=2), nn.ReLU(), nn.Flatten(),
                           nn.Linear(16, 10)), (1, 8), "grouped or dilated convolution"),
    (lambda: nn.Sequential(nn.Conv2d(2, 4, (3, 1), groups=2), nn.ReLU(), nn.Flatten(),
                           nn.Linear(192, 10)), (2, 8, 8), "grouped or dilated convolution"),
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(128, 10)), (2, 2, 4, 8),
     r"input shape \(2, 2, 4, 8\) per sample: onespike takes vectors"),
    (lambda: nn.Sequential(nn.Linear(64, 8), nn.Hardtanh(-1.0, 1.0), nn.Linear(8, 10)), (64,),
     r"a clamp to \[-1.0, 1.0\] is not a ReLU"),
    (lambda: nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.ReLU(),
                           nn.Linear(8, 10)), (64,), "a ReLU must follow a Linear/Conv2d"),
])
def test_refusals_name_the_reason(factory, shape, message):
    from onespike.mapper import convert

    with pytest.raises(OnespikeError, match=message):
        convert(factory().eval(), np.random.default_rng(0).random((8,) + shape))


def test_no_traceback_reaches_the_user(tmp_path, capsys, monkeypatch):
    """An unexpected failure inside a command is one line and exit status 3."""
    import onespike.ir

    def broken(path):
        raise ZeroDivisionError("planted")

    monkeypatch.setattr(onespike.ir, "load", broken)
    monkeypatch.delenv("ONESPIKE_DEBUG", raising=False)
    assert main(["info", str(tmp_path / "x.npz")]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" in err and "planted" in err


def test_three_bit_weights_stay_close_to_per_row_quantization():
    """A 64-256-10 MLP at 3-bit weights: the integer network within 1.5 points of the same
    float model with its weights quantized per output row to 3 bits (the issue's baseline),
    though every hidden channel's step is folded into the readout's columns."""
    import copy

    from onespike.mapper import convert

    data = dataset("raw")
    torch.manual_seed(0)
    model = zoo.train(zoo.mlp([64, 256, 10]), data)    # the mapper before 2026-11-25: −1.8
    rowq = copy.deepcopy(model)
    with torch.no_grad():
        for layer in rowq.modules():
            if isinstance(layer, nn.Linear):
                step = layer.weight.abs().amax(1, keepdim=True) / 3
                layer.weight.copy_(torch.round(layer.weight / step).clamp(-3, 3) * step)
    per_row = zoo.float_accuracy(rowq, data.x_test, data.y_test)
    net = convert(model, data.x_train, act_bits=4, weight_bits=3)
    spiking = float(np.mean(closed_form(net, net.encoder.encode(data.x_test)).classes
                            == data.y_test))
    assert spiking >= per_row - 0.015, f"per-row {per_row:.4f}, onespike {spiking:.4f}"
