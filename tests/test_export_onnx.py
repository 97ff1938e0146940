"""``onespike export``: onnxruntime runs the exported integer graph to the golden model's
logits and classes, bit for bit."""

import dataclasses

import numpy as np
import pytest

from onespike.ir import Conv, MaxPool, Recurrent, save
from onespike.mapper.onnx_export import to_onnx
from onespike.sim import closed_form, random_inputs, random_network, random_recurrent_network

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def run(model, inputs):
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(["logits", "class"], {name: inputs})


def assert_exact(net, a0, model=None, inputs=None):
    logits, classes = run(model or to_onnx(net), a0 if inputs is None else inputs)
    trace = closed_form(net, a0)
    assert logits.dtype == np.int64 and np.array_equal(logits, trace.logits)
    assert np.array_equal(classes, trace.classes)


def kinds(net):
    """The layer features a network exercises."""
    found = {layer.kind for layer in net.layers}
    found |= {"sum-pool" for layer in net.layers if getattr(layer, "pooling", False)}
    found |= {"position-bias" for layer in net.layers
              if isinstance(layer, Conv) and layer.bias.ndim == 3}
    found |= {"padding" for layer in net.layers
              if isinstance(layer, (Conv, MaxPool)) and layer.padding != (0, 0)}
    found |= {"signal" if net.encoder.signal_shape else f"input-{len(net.encoder.shape)}d"}
    return found


def test_random_networks_of_every_layer_kind_are_exact():
    covered = set()
    for seed in range(80):
        rng = np.random.default_rng(seed)
        net = random_network(rng, conv=seed % 4 != 0)
        covered |= kinds(net)
        assert_exact(net, random_inputs(rng, net, 12))
    assert covered >= {"dense", "conv", "maxpool", "sum-pool", "position-bias", "padding",
                       "signal", "input-1d", "input-3d"}


def test_random_sequence_networks_are_exact_unrolled():
    for seed in range(25):
        rng = np.random.default_rng(seed)
        net = random_recurrent_network(rng, max_steps=8)
        assert any(isinstance(layer, Recurrent) for layer in net.layers)
        assert_exact(net, random_inputs(rng, net, 6))


def test_extreme_inputs_and_negative_membranes_are_exact():
    # saturated and silent inputs drive y far below 0 (floor vs. truncation) and above A·R
    for seed in range(20):
        rng = np.random.default_rng(1000 + seed)
        net = random_network(rng)
        levels = net.encoder.levels
        a0 = np.concatenate([np.zeros((1,) + net.encoder.shape, np.int64),
                             np.full((1,) + net.encoder.shape, levels, np.int64),
                             random_inputs(rng, net, 4)])
        assert_exact(net, a0)


def with_encoder(net, rng):
    """``net`` with a non-trivial encoder (negative offsets, uneven scales)."""
    channels = len(net.encoder.scale)
    encoder = dataclasses.replace(net.encoder, scale=rng.uniform(0.05, 2.0, channels),
                                  offset=rng.uniform(-3.0, 0.0, channels))
    return dataclasses.replace(net, encoder=encoder)


def test_encoder_graph_encodes_like_the_encoder():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        net = with_encoder(random_network(rng), rng)
        shape = net.encoder.signal_shape or net.encoder.shape
        x = rng.normal(size=(30,) + shape) * 3
        # half-way points, where rounding is decided
        step = np.floor(rng.uniform(0, net.encoder.levels + 2, size=x[:10].shape)) + 0.5
        per = (-1, 1) if net.encoder.signal_shape else \
            ((-1, 1, 1) if len(shape) == 3 else (-1,))
        x[:10] = step * net.encoder.scale.reshape(per) + net.encoder.offset.reshape(per)
        assert_exact(net, net.encoder.encode(x), to_onnx(net, encoder=True), x)


def test_sequence_encoder_graph():
    rng = np.random.default_rng(3)
    net = random_recurrent_network(rng, max_steps=5)
    net = dataclasses.replace(net, encoder=dataclasses.replace(
        net.encoder, scale=rng.uniform(0.1, 1, len(net.encoder.scale))))
    x = rng.normal(size=(7, net.steps) + (net.encoder.signal_shape or net.encoder.shape))
    assert_exact(net, net.encoder.encode(x), to_onnx(net, encoder=True), x)


def test_a_trained_digits_cnn_is_exact(torch):
    import torch.nn as nn

    from onespike import zoo
    from onespike.mapper import convert

    data = zoo.digits(image=True, normalize=True)
    model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                          nn.AvgPool2d(2), nn.Flatten(), nn.Linear(32, 10))
    net = convert(zoo.train(model, data, epochs=3), data.x_train[:300])
    x = data.x_test.astype(np.float64)
    assert_exact(net, net.encoder.encode(x))
    assert_exact(net, net.encoder.encode(x), to_onnx(net, encoder=True), x)


def test_a_wrong_network_is_caught():
    # the comparison can fail: one weight changed by one changes the logits
    rng = np.random.default_rng(5)
    net = random_network(rng, conv=False, max_layers=1)
    model = to_onnx(net)
    weight = net.layers[-1].weight.copy()
    weight[0, 0] += 1
    other = dataclasses.replace(net, layers=(dataclasses.replace(net.layers[-1],
                                                                 weight=weight),))
    a0 = np.full((1,) + net.encoder.shape, net.encoder.levels, np.int64)
    logits, _ = run(model, a0)
    assert not np.array_equal(logits, closed_form(other, a0).logits)


def test_command_line_exports(tmp_path, capsys):
    from onespike.cli import main

    rng = np.random.default_rng(11)
    net = with_encoder(random_network(rng), rng)
    save(net, tmp_path / "net.npz")
    out = tmp_path / "net.onnx"
    assert main(["export", str(tmp_path / "net.npz"), "-o", str(out), "--encoder"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}: input x (float64")
    x = rng.normal(size=(9,) + (net.encoder.signal_shape or net.encoder.shape))
    assert_exact(net, net.encoder.encode(x), onnx.load(str(out)), x)
    assert main(["export", str(tmp_path / "net.npz"), "-o", str(out)]) == 0
    capsys.readouterr()
    assert_exact(net, net.encoder.encode(x), onnx.load(str(out)))


def test_exported_graph_is_integer_and_standard():
    net = random_network(np.random.default_rng(2))
    model = to_onnx(net)
    assert {o.domain for o in model.opset_import} == {""}
    floats = [t.name for t in model.graph.initializer
              if t.data_type not in (onnx.TensorProto.INT64,)]
    assert floats == []
    assert {n.op_type for n in model.graph.node} <= {
        "Reshape", "Pad", "Gather", "MatMul", "Add", "Transpose", "Div", "Clip", "ReduceMax",
        "ReduceSum", "ArgMax"}

