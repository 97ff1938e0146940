"""ONNX front end: the same network from PyTorch and from its ONNX export maps to the same
integer network, array for array; channels-last graphs map like their channels-first
twins; every refusal names what it refuses."""

import copy
import warnings

import numpy as np
import pytest

from onespike.errors import OnespikeError
from onespike.mapper import convert
from onespike.sim import closed_form

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")      # torch.onnx.export(..., dynamo=True)
nn = pytest.importorskip("torch.nn")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def same_network(a, b):
    """Identical networks: the same header and every array equal to the bit."""
    assert a.header() == b.header()
    arrays_a, arrays_b = a.arrays(), b.arrays()
    assert arrays_a.keys() == arrays_b.keys()
    for name, value in arrays_a.items():
        assert value.dtype == arrays_b[name].dtype and np.array_equal(value, arrays_b[name]), \
            name


def accuracy(net, data):
    trace = closed_form(net, net.encoder.encode(data.x_test))
    return float(np.mean(trace.classes == data.y_test))


def export(torch, model, example, exporter, path):
    """``model`` exported to ONNX at ``path`` with a symbolic batch dimension."""
    x = torch.as_tensor(example[:2], dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            program = torch.onnx.export(model, (x,), dynamo=True, verbose=False,
                                        dynamic_shapes=({0: torch.export.Dim("batch")},))
            program.save(str(path))
        else:
            torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["x"],
                              dynamic_axes={"x": {0: "batch"}})
    return path


def fold_batch_norm_as_exported(torch, model):
    """``model`` with each BatchNorm folded into the Linear/Conv before it in float32, the
    way the dynamo exporter's optimizer (onnxscript ``_fuse_batchnorm``) writes it: the
    float network that its ONNX file holds."""
    layers = list(copy.deepcopy(model))
    out = []
    for layer in layers:
        if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            affine = out[-1]
            gamma, beta, mean, var = (t.detach().numpy() for t in (
                layer.weight, layer.bias, layer.running_mean, layer.running_var))
            factor = gamma / np.sqrt(var + layer.eps)
            weight = affine.weight.detach().numpy()
            with torch.no_grad():
                affine.weight.copy_(torch.as_tensor(
                    weight * factor.reshape((-1,) + (1,) * (weight.ndim - 1))))
                affine.bias.copy_(torch.as_tensor(
                    (affine.bias.detach().numpy() - mean) * factor + beta))
            continue
        out.append(layer)
    return nn.Sequential(*out).eval()


# -- trained models, small and quick --------------------------------------------------------
@pytest.fixture(scope="module")
def digits_mlp_bn(torch):
    from onespike import zoo

    data = zoo.digits()
    model = nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.1),
                          nn.Linear(32, 10))
    return zoo.train(model, data, epochs=4), data


@pytest.fixture(scope="module")
def digits_cnn(torch):
    """Padding, mean/std-normalized input (negative values), max and average pooling."""
    from onespike import zoo

    data = zoo.digits(image=True, normalize=True)
    model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                          nn.Flatten(), nn.Linear(32, 10))
    return zoo.train(model, data, epochs=4), data


@pytest.fixture(scope="module")
def digits_cnn1d(torch):
    """The digits' rows as an 8-channel signal of length 8; global average pooling."""
    from onespike import zoo

    data = zoo.digits(image=True)
    data = zoo.Dataset("rows", data.x_train[:, 0], data.y_train, data.x_test[:, 0],
                       data.y_test)
    model = nn.Sequential(nn.Conv1d(8, 12, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2),
                          nn.Conv1d(12, 16, 3, padding=1), nn.BatchNorm1d(16), nn.ReLU6(),
                          nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(16, 10))
    return zoo.train(model, data, epochs=4), data


@pytest.mark.parametrize("exporter", ["dynamo", "legacy"])
@pytest.mark.parametrize("which", ["digits_mlp_bn", "digits_cnn", "digits_cnn1d"])
def test_torch_and_its_onnx_export_map_to_identical_networks(torch, request, tmp_path,
                                                            which, exporter):
    model, data = request.getfixturevalue(which)
    path = export(torch, model, data.x_train, exporter, tmp_path / "model.onnx")
    has_batch_norm = any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in model)
    # The dynamo exporter folds batch norm into the layer before it, in float32: compare
    # with the float network its file holds (the legacy exporter keeps BatchNormalization).
    source = fold_batch_norm_as_exported(torch, model) \
        if exporter == "dynamo" and has_batch_norm else model
    calib = data.x_train[:400]
    got = convert(str(path), calib)
    same_network(convert(source, calib), got)
    if source is not model:     # the exporter's float32 fold costs no accuracy either
        assert accuracy(got, data) == accuracy(convert(model, calib), data)
    if exporter == "legacy":
        same_network(got, convert(onnx.load(str(path)), calib))   # as a ModelProto


def test_dynamo_batch_norm_fold_is_read_exactly(torch, digits_mlp_bn, tmp_path):
    # the reference above is the exporter's own fold, to the bit
    model, data = digits_mlp_bn
    proto = onnx.load(str(export(torch, model, data.x_train, "dynamo", tmp_path / "m.onnx")))
    stored = [numpy_helper.to_array(t) for t in proto.graph.initializer
              if t.name == "0.weight"]
    folded = fold_batch_norm_as_exported(torch, model)
    assert np.array_equal(stored[0], folded[0].weight.detach().numpy())


# -- hand-built graphs --------------------------------------------------------------------
def graph(nodes, shape, out_shape, inits=(), *, opset=17, name="x", inputs=None,
          outputs=None):
    """A model from ``nodes`` with one float input ``x`` (``shape``, batch symbolic) and
    one output ``y``; ``inits`` are ``(name, array)`` initializers."""
    inputs = inputs or [helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                      ["N", *shape])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                        ["N", *out_shape])]
    initializers = [numpy_helper.from_array(np.asarray(v, np.float32) if
                                            np.asarray(v).dtype.kind == "f" else np.asarray(v),
                                            k) for k, v in inits]
    g = helper.make_graph(nodes, "g", inputs, outputs, initializers)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def conv_graph(rng, *, channels_last, one_d=False):
    """Normalize (per-channel Sub, Div), convolve with padding, ReLU, max-pool, flatten,
    a MatMul + Add hidden layer and a Gemm readout; channels-last like a tf2onnx export
    (Transposes around the convolutions, the flatten in (H, W, C) order) or its
    channels-first twin. Same weights, same function."""
    c, h, w = (2, 1, 10) if one_d else (2, 6, 6)
    k = (1, 3) if one_d else (3, 3)
    conv_w = rng.normal(size=(4, c) + k).astype(np.float32)
    hidden = rng.normal(size=(4 * h * (w // 2) // (1 if one_d else 2), 5)).astype(np.float32)
    pooled = (4, h, w // 2) if one_d else (4, h // 2, w // 2)
    mean, std = np.array([0.5, -0.2], np.float32), np.array([2.0, 0.5], np.float32)
    spatial = (w,) if one_d else (h, w)
    squeeze = (lambda a: a[:, :, 0]) if one_d else (lambda a: a)
    inits = [("w", squeeze(conv_w)), ("b", rng.normal(size=4)), ("h", None),
             ("hb", rng.normal(size=5)), ("r", rng.normal(size=(3, 5))),
             ("rb", rng.normal(size=3)), ("flat", np.array([-1, hidden.shape[0]]))]
    pool = {"kernel_shape": [2] if one_d else [2, 2], "strides": [2] if one_d else [2, 2]}
    pads = [1, 1] if one_d else [1, 1, 1, 1]
    tail = [helper.make_node("Conv", ["t", "w", "b"], ["c"], pads=pads, name="conv"),
            helper.make_node("Relu", ["c"], ["r1"]),
            helper.make_node("MaxPool", ["r1"], ["p"], **pool)]
    if channels_last:
        # the hidden layer's rows in (H, W, C) order, as Keras flattens
        rows = hidden.reshape(pooled + (5,)).transpose(1, 2, 0, 3).reshape(-1, 5)
        inits[2] = ("h", rows)
        perm, back = ([0, 2, 1], [0, 2, 1]) if one_d else ([0, 3, 1, 2], [0, 2, 3, 1])
        head = [helper.make_node("Sub", ["x", "mean"], ["s"]),
                helper.make_node("Div", ["s", "std"], ["n"]),
                helper.make_node("Transpose", ["n"], ["t"], perm=perm)]
        tail += [helper.make_node("Transpose", ["p"], ["q"], perm=back),
                 helper.make_node("Reshape", ["q", "flat"], ["f"])]
        inits += [("mean", mean), ("std", std)]
        shape = spatial + (c,)
    else:
        inits[2] = ("h", hidden)
        head = [helper.make_node("Sub", ["x", "mean"], ["s"]),
                helper.make_node("Div", ["s", "std"], ["t"])]
        tail += [helper.make_node("Flatten", ["p"], ["f"])]
        per_channel = (c, 1) if one_d else (c, 1, 1)
        inits += [("mean", mean.reshape(per_channel)), ("std", std.reshape(per_channel))]
        shape = (c,) + spatial
    tail += [helper.make_node("MatMul", ["f", "h"], ["m"]),
             helper.make_node("Add", ["m", "hb"], ["a"]),
             helper.make_node("Relu", ["a"], ["r2"]),
             helper.make_node("Gemm", ["r2", "r", "rb"], ["y"], transB=1)]
    return graph(head + tail, shape, (3,), inits), shape


@pytest.mark.parametrize("one_d", [False, True])
def test_channels_last_graph_maps_like_its_channels_first_twin(torch, one_d):
    rng = np.random.default_rng(1)
    last, last_shape = conv_graph(np.random.default_rng(7), channels_last=True, one_d=one_d)
    first, first_shape = conv_graph(np.random.default_rng(7), channels_last=False,
                                    one_d=one_d)
    x_first = rng.normal(size=(300,) + first_shape)
    axes = (0, 2, 1) if one_d else (0, 2, 3, 1)
    x_last = np.ascontiguousarray(np.transpose(x_first, axes))
    assert x_last.shape[1:] == last_shape
    notes = []
    from onespike.mapper import convert_onnx
    got = convert_onnx(last, x_last, notes=notes)
    same_network(got, convert(first, x_first))
    axes = "0, 2, 1" if one_d else "0, 3, 1, 2"
    assert notes[0] == (f"the model takes channels-last inputs; the network takes them "
                        f"channels-first: feed it x.transpose({axes})")


def test_channels_last_twin_computes_the_onnx_function(torch):
    # the twins are one function (checked with onnxruntime when present)
    ort = pytest.importorskip("onnxruntime")
    last, _ = conv_graph(np.random.default_rng(7), channels_last=True)
    first, _ = conv_graph(np.random.default_rng(7), channels_last=False)
    x = np.random.default_rng(2).normal(size=(5, 2, 6, 6)).astype(np.float32)

    def run(model, data):
        session = ort.InferenceSession(model.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        return session.run(None, {"x": data})[0]
    np.testing.assert_allclose(run(last, x.transpose(0, 2, 3, 1).copy()), run(first, x),
                               rtol=1e-5, atol=1e-5)


# -- refusals -------------------------------------------------------------------------------
def dense_graph(*extra, inits=(), op="Relu", opset=17, **kw):
    """x (4,) → Gemm → ``op`` → Gemm → y (2,), with ``extra`` nodes appended."""
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1, name="fc1"),
             helper.make_node(op, ["h"], ["r"], name="act"),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1, name="fc2"),
             *extra]
    base = [("w1", np.ones((3, 4))), ("b1", np.zeros(3)), ("w2", np.ones((2, 3))),
            ("b2", np.zeros(2))]
    return graph(nodes, (4,), (2,), base + list(inits), opset=opset, **kw)


CALIB = np.random.default_rng(0).random((20, 4))


def refused(model, calib=CALIB):
    with pytest.raises(OnespikeError) as info:
        convert(model, calib)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_plain_graph_converts():
    net = convert(dense_graph(), CALIB)
    assert [l.kind for l in net.layers] == ["dense", "dense"]


def test_unsupported_operator_is_named():
    message = refused(dense_graph(op="Sigmoid"))
    assert message.startswith("unsupported layer node 'act' (Sigmoid); supported ONNX "
                              "operators are Gemm, MatMul (+ Add)")


def test_custom_and_quantized_operators_are_refused():
    custom = helper.make_node("Quant", ["h"], ["r"], name="q", domain="qonnx.custom_op.general")
    model = dense_graph()
    model.graph.node[1].CopyFrom(custom)
    model.opset_import.append(helper.make_opsetid("qonnx.custom_op.general", 1))
    assert refused(model) == ("node 'q' (qonnx.custom_op.general:Quant): a Quant node takes "
                              "4 inputs (x, scale, zero point, bit width), not 1")
    model.graph.node[1].domain = "example.custom"
    assert refused(model).startswith("unsupported layer node 'q' (example.custom:Quant): a "
                                     "custom operator")
    assert "export_qonnx" in refused(dense_graph(op="DequantizeLinear"))
    assert "QONNX (Brevitas' export_qonnx)" in refused(dense_graph(op="QLinearMatMul"))


def test_softmax_at_the_end_is_refused():
    model = dense_graph(helper.make_node("Softmax", ["y"], ["p"], name="sm"))
    model.graph.output[0].name = "p"
    assert refused(model) == ("node 'sm' (Softmax): remove the softmax after the readout "
                              "layer; the class is the argmax of the integer logits")


def test_several_inputs_or_outputs_are_refused():
    two_in = dense_graph(inputs=[helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 4])
                                 for n in ("x", "z")])
    assert refused(two_in) == ("the model takes 2 inputs; onespike converts models with "
                               "exactly one input tensor")
    two_out = dense_graph(outputs=[helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                                   for n in ("y", "h")])
    assert refused(two_out) == ("the model has 2 outputs ('y', 'h'); onespike converts "
                                "models with exactly one output, the logits")


def test_branching_is_refused():
    model = dense_graph()
    model.graph.node[2].input[0] = "h"                # fc2 reads fc1 beside the ReLU
    model.graph.node.append(helper.make_node("Add", ["r", "r"], ["dead"], name="side"))
    message = refused(model)
    assert message.startswith("the output of node 'fc1' (Gemm) feeds 2 operations "
                              "(node 'act' (Relu), node 'fc2' (Gemm)); only a plain chain")


def test_output_off_the_chain_is_refused():
    model = dense_graph(helper.make_node("Identity", ["b2"], ["z"]))
    model.graph.output[0].name = "z"
    assert refused(model) == ("the layers from the input end at node 'fc2' (Gemm), which "
                              "does not reach the output 'z'")


def test_residual_add_is_refused():
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1, name="fc1"),
             helper.make_node("Relu", ["h"], ["r"], name="act"),
             helper.make_node("Add", ["r", "x"], ["s"], name="skip"),
             helper.make_node("Gemm", ["s", "w2", "b2"], ["y"], transB=1, name="fc2")]
    model = graph(nodes, (4,), (2,), [("w1", np.ones((4, 4))), ("b1", np.zeros(4)),
                                      ("w2", np.ones((2, 4))), ("b2", np.zeros(2))])
    assert refused(model).startswith("the output of input 'x' feeds 2 operations "
                                     "(node 'fc1' (Gemm), node 'skip' (Add))")


def test_opset_out_of_range_is_refused():
    newest = onnx.defs.onnx_opset_version()
    assert refused(dense_graph(opset=12)) == (
        f"the model uses ONNX opset 12; onespike reads opsets 13 to {newest}: upgrade it "
        f"with onnx.version_converter.convert_version(model, 13)")


def test_every_opset_from_13_converts():
    want = convert(dense_graph(opset=13), CALIB)
    for opset in range(14, onnx.defs.onnx_opset_version() + 1):
        same_network(convert(dense_graph(opset=opset), CALIB), want)


def test_calibration_that_does_not_fit_is_refused():
    assert refused(dense_graph(), np.zeros((5, 3))) == (
        "calibration samples of shape (3,) do not fit the model input 'x' ('batch', 4)")


def test_symbolic_sizes_are_fixed_from_the_calibration_data():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "w2"], ["y"], transB=1)]
    model = graph(nodes, (1, "H", "W"), (2,), [("w", np.ones((3, 1, 3, 3))),
                                                ("w2", np.ones((2, 3)))])
    net = convert(model, np.random.default_rng(0).random((10, 1, 5, 7)))
    assert net.encoder.shape == (1, 5, 7) and net.layers[-1].pool == (5, 7)


def test_batch_axis_must_stay_first():
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"], axis=0, name="flat"),
             helper.make_node("Gemm", ["f", "w2"], ["y"], transB=1)]
    model = graph(nodes, (4,), (2,), [("w1", np.ones((3, 4))), ("w2", np.ones((2, 3)))])
    assert refused(model) == ("node 'flat' (Flatten): Flatten with axis 0 mixes the batch "
                              "axis in; only axis 1 is supported")
    squeeze = [helper.make_node("Squeeze", ["r"], ["s"], name="sq"),
               helper.make_node("Unsqueeze", ["s", "zero"], ["f"])]
    model = graph(nodes[:2] + squeeze + nodes[3:], (4,), (2,),
                  [("w1", np.ones((3, 4))), ("w2", np.ones((2, 3))), ("zero", np.array([0]))])
    assert refused(model) == ("node 'sq' (Squeeze): its output (3,) does not keep the "
                              "batch axis first; onespike maps per-sample layers only")


def conv_model(conv_attrs, *, pool=None, weight=(3, 1, 3, 3)):
    """x (C, 6, 6) → Conv → Relu (→ pool) → Flatten → MatMul (its weight sized to fit)."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", **conv_attrs),
             helper.make_node("Relu", ["c"], ["r"])]
    last = "r"
    if pool is not None:
        nodes.append(helper.make_node(pool[0], ["r"], ["p"], name="pool", **pool[1]))
        last = "p"
    nodes.append(helper.make_node("Flatten", [last], ["f"]))
    channels = weight[1] * conv_attrs.get("group", 1)
    probe = graph(nodes, (channels, 6, 6), ("K",), [("w", np.ones(weight))],
                  outputs=[helper.make_tensor_value_info("f", TensorProto.FLOAT, None)])
    inferred = onnx.shape_inference.infer_shapes(probe).graph.output[0]
    width = inferred.type.tensor_type.shape.dim[1].dim_value
    nodes.append(helper.make_node("MatMul", ["f", "w2"], ["y"]))
    return graph(nodes, (channels, 6, 6), (2,), [("w", np.ones(weight)),
                                                 ("w2", np.ones((width, 2)))])


IMAGES = np.random.default_rng(0).random((10, 1, 6, 6))


@pytest.mark.parametrize("attrs, message", [
    ({"dilations": [2, 2]}, "node 'conv' (Conv): grouped or dilated convolution is not "
                            "supported"),
    ({"pads": [0, 0, 1, 1]}, "node 'conv' (Conv): padding [0, 0, 1, 1] differs between the "
                             "two sides of an axis; onespike pads both sides equally"),
    ({"auto_pad": "SAME_UPPER", "kernel_shape": [2, 2]},
     "node 'conv' (Conv): padding [0, 0, 1, 1] differs between the two sides of an axis; "
     "onespike pads both sides equally"),
])
def test_convolutions_the_hardware_lacks_are_refused(attrs, message):
    weight = (3, 1, 2, 2) if attrs.get("kernel_shape") == [2, 2] else (3, 1, 3, 3)
    assert refused(conv_model(attrs, weight=weight), IMAGES) == message


def test_grouped_convolution_is_refused():
    images = np.random.default_rng(0).random((10, 2, 6, 6))
    assert refused(conv_model({"group": 2}, weight=(2, 1, 3, 3)), images) == \
        "node 'conv' (Conv): grouped or dilated convolution is not supported"


def test_same_padding_with_an_odd_kernel_is_symmetric():
    net = convert(conv_model({"auto_pad": "SAME_UPPER"}), IMAGES)
    assert net.layers[0].padding == (1, 1)


@pytest.mark.parametrize("pool, message", [
    (("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}),
     "node 'pool' (MaxPool): max pooling with ceil_mode or dilation is not supported"),
    (("AveragePool", {"kernel_shape": [2, 2]}),
     "node 'pool' (AveragePool): only non-overlapping average pooling (stride = kernel, no "
     "padding, no ceil_mode) is supported"),
])
def test_pooling_the_hardware_lacks_is_refused(pool, message):
    assert refused(conv_model({"pads": [1, 1, 1, 1]}, pool=pool), IMAGES) == message


def test_onnx_maxpool_strides_default_to_one():
    pool = ("MaxPool", {"kernel_shape": [2, 2]})
    net = convert(conv_model({"pads": [1, 1, 1, 1]}, pool=pool), IMAGES)
    assert net.layers[1].kind == "maxpool" and net.layers[1].stride == (1, 1)


def test_transpose_elsewhere_is_refused():
    model = conv_model({}, pool=("Transpose", {"perm": [0, 1, 3, 2]}))
    assert refused(model, IMAGES).startswith("node 'pool' (Transpose): transpose [0, 1, 3, "
                                             "2] is not supported; only a channels-last input")


def test_clip_must_be_a_relu():
    model = dense_graph(inits=[("lo", np.float32(-1)), ("hi", np.float32(6))], op="Clip")
    model.graph.node[1].input.extend(["lo", "hi"])
    assert refused(model) == ("node 'act' (Clip): a clamp to [-1.0, 6.0] is not a ReLU; "
                              "onespike maps clamps with min 0 (and any positive max)")
    model = dense_graph(inits=[("lo", np.float32(0)), ("hi", np.float32(6))], op="Clip")
    model.graph.node[1].input.extend(["lo", "hi"])
    assert convert(model, CALIB).layers[0].act_bits == 4


def test_training_dropout_is_refused():
    model = dense_graph(helper.make_node("Dropout", ["y0", "ratio", "train"], ["y"],
                                         name="drop"),
                        inits=[("ratio", np.float32(0.5)), ("train", np.array(True))])
    model.graph.node[2].output[0] = "y0"
    assert refused(model) == ("node 'drop' (Dropout): dropout is in training mode; export "
                              "the model in eval mode")


def test_nan_weights_are_refused():
    model = dense_graph()
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(
        np.full((3, 4), np.nan, np.float32), "w1"))
    assert refused(model) == ("node 'fc1' (Gemm): parameters contain NaN or infinite "
                              "values; fix the trained model before converting")


def test_computed_weights_are_refused():
    model = dense_graph()
    model.graph.node[0].input[1] = "w1r"
    model.graph.node.insert(0, helper.make_node("Relu", ["w1"], ["w1r"]))
    assert refused(model) == ("node 'fc1' (Gemm): its weight 'w1r' is computed in the graph, "
                              "not stored; onespike needs it constant")


def test_external_data_is_read_and_checked(tmp_path):
    from onnx.external_data_helper import convert_model_to_external_data

    model = dense_graph()
    want = convert(model, CALIB)
    convert_model_to_external_data(model, location="weights.bin", size_threshold=0)
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    same_network(convert(path, CALIB), want)
    assert refused(model).startswith("the in-memory model keeps tensor 'w1' in the external "
                                     "file 'weights.bin'; pass the .onnx path")
    (tmp_path / "weights.bin").unlink()
    assert refused(path) == (f"{path}: the external data file 'weights.bin' of tensor 'w1' "
                             f"is missing; copy it beside the .onnx file or re-save the model "
                             f"with onnx.save(model, path, save_as_external_data=False)")


def test_external_data_outside_the_folder_is_refused(tmp_path):
    from onnx.external_data_helper import set_external_data

    model = dense_graph()
    tensor = model.graph.initializer[0]
    set_external_data(tensor, location="../elsewhere.bin")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    assert refused(path).endswith("points outside the model's folder ('../elsewhere.bin'); "
                                  "onespike reads external data only beside the .onnx file")


def test_files_that_are_not_onnx_are_refused(tmp_path):
    path = tmp_path / "model.onnx"
    assert refused(path) == f"model file {path} does not exist"
    path.write_bytes(b"\x00not a protobuf at all\xff" * 3)
    assert refused(path).startswith(f"{path} is not an ONNX model (")


def test_maps_and_messages_match_the_torch_path(torch, tmp_path):
    # a ReLU before any layer: the torch front end's check and message
    model = nn.Sequential(nn.ReLU(), nn.Linear(4, 2)).eval()
    path = export(torch, model, CALIB, "legacy", tmp_path / "m.onnx")
    assert refused(path) == ("node '/0/Relu' (Relu): a ReLU must follow a Linear/Conv2d "
                             "layer (before the first one, or after a batch norm that is not "
                             "folded into one, inputs would be clipped unseen)")


def test_command_line_converts_an_onnx_file(tmp_path, capsys):
    from onespike.cli import main
    from onespike.ir import load

    path = tmp_path / "model.onnx"
    onnx.save(dense_graph(), str(path))
    np.save(tmp_path / "x.npy", CALIB)
    assert main(["convert", str(path), "--calib", str(tmp_path / "x.npy"),
                 "-o", str(tmp_path / "net.npz")]) == 0
    same_network(load(tmp_path / "net.npz"), convert(dense_graph(), CALIB))
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'net.npz'}")


def test_a_zero_pad_before_a_convolution_folds_as_in_torch(torch, tmp_path):
    """``nn.ZeroPad2d`` exported as ONNX ``Pad`` (dynamo exporter; the legacy one computes
    the pads in the graph, refused as ConstantOfShape): the same network as from PyTorch."""
    exporter = "dynamo"
    from onespike.mapper import convert

    torch.manual_seed(2)
    model = nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(1, 3, 3), nn.ReLU(), nn.ZeroPad2d(2),
                          nn.Conv2d(3, 2, 5), nn.ReLU(), nn.Flatten(),
                          nn.Linear(2 * 8 * 8, 3)).eval()
    x = torch.rand(30, 1, 8, 8).numpy()
    path = export(torch, model, x, exporter, tmp_path / "pad.onnx")
    from_onnx, from_torch = convert(str(path), x), convert(model, x)
    assert [l.padding for l in from_onnx.layers[:2]] == [(1, 1), (2, 2)]
    same_network(from_onnx, from_torch)
