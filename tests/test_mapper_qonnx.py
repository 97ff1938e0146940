"""Quantized ONNX (QONNX, QCDQ) front end: a quantization-aware trained model maps with its
own quantizers, exactly — its quantized forward pass and the golden model agree on every
sample, class and logit (up to the logit scale) — and what cannot be held exactly is
refused with the reason, or recalibrated when asked."""

import functools
import warnings

import numpy as np
import pytest

from onespike.errors import OnespikeError
from onespike.mapper import convert
from onespike.sim import closed_form

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from qonnx.custom_op.general.quant import quant as qonnx_quant  # noqa: E402

DOMAIN = "qonnx.custom_op.general"


# -- Brevitas: a QAT digits MLP, exported ------------------------------------------------
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x, y = (data.data / 16).astype(np.float32), data.target
    return x[:1400], y[:1400], x[1400:], y[1400:]


def quiet(function):
    """``function`` with Brevitas' own deprecation and export warnings silenced."""
    def call(*args, **kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return function(*args, **kw)
    return call


@quiet
def train_brevitas(act_bits, seed=0):
    import brevitas.nn as qnn
    from brevitas.quant import Uint8ActPerTensorFloat
    from torch import nn

    torch.manual_seed(seed)
    x, y, _, _ = digits()
    model = nn.Sequential(
        qnn.QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=8,
                          return_quant_tensor=True),
        qnn.QuantLinear(64, 64, bias=True, weight_bit_width=8),
        qnn.QuantReLU(bit_width=act_bits, return_quant_tensor=True),
        qnn.QuantLinear(64, 10, bias=True, weight_bit_width=8))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    x, y = torch.tensor(x), torch.tensor(y)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


@quiet
def export(model, path, qcdq=False):
    from brevitas.export import export_onnx_qcdq, export_qonnx

    (export_onnx_qcdq if qcdq else export_qonnx)(
        model, torch.tensor(digits()[0][:1]), export_path=str(path))
    return path


@functools.lru_cache(maxsize=None)
def trained(act_bits):
    return train_brevitas(act_bits)


@pytest.fixture(scope="module", params=[4, 2], ids=["act4", "act2"])
def qat(request, tmp_path_factory):
    model = trained(request.param)
    path = export(model, tmp_path_factory.mktemp("qonnx") / f"digits{request.param}.onnx")
    return request.param, model, path


def test_brevitas_qat_model_maps_exactly_on_every_test_sample(qat):
    act_bits, model, path = qat
    x_train, _, x_test, y_test = digits()
    notes = []
    net = convert(path, x_train, notes=notes)
    assert net.layers[0].act_bits == act_bits and net.encoder.act_bits == 8
    assert notes[0].startswith("read the model's own quantizers:")
    with torch.no_grad():
        logits = quiet(model)(torch.tensor(x_test)).numpy().astype(np.float64)
    trace = closed_form(net, net.encoder.encode(x_test))
    assert np.array_equal(trace.classes, logits.argmax(axis=1))      # zero mismatches
    scaled = trace.logits * net.layers[-1].scale[0]
    assert np.allclose(scaled, logits, rtol=0, atol=1e-4)           # float32 rounding
    assert np.mean(trace.classes == y_test) > 0.85


def test_brevitas_qat_model_rtl_matches_golden_model(qat, tmp_path_factory):
    from onespike.sim.verify import stimulus, verify

    act_bits, _, path = qat
    x_train, _, x_test, _ = digits()
    net = convert(path, x_train)
    result = verify(net, stimulus(net, x_test[:4]), lanes=8, simulator="icarus",
                    build_root=tmp_path_factory.mktemp("verify"), progress=False)
    assert result["mismatches"] == 0, result["first_mismatch"]


def test_qcdq_export_reads_like_qonnx(tmp_path):
    model, x_train = trained(4), digits()[0]
    qcdq = convert(export(model, tmp_path / "qcdq.onnx", qcdq=True), x_train)
    qonnx = convert(export(model, tmp_path / "qonnx.onnx"), x_train)
    assert qcdq.header() == qonnx.header()
    for name, value in qonnx.arrays().items():
        assert np.array_equal(value, qcdq.arrays()[name]), name


# -- synthetic QONNX graphs against qonnx's own quantizer ---------------------------------
class Q:
    """A quantizer: scale, zero point, bits, signed, narrow, rounding."""

    def __init__(self, scale, bits, signed=0, narrow=0, zero=0.0, rounding="ROUND"):
        self.scale, self.bits, self.signed, self.narrow = scale, bits, signed, narrow
        self.zero, self.rounding = zero, rounding

    def __call__(self, x):
        return qonnx_quant(np.asarray(x, np.float64), np.asarray(self.scale, np.float64),
                           np.asarray(self.zero, np.float64), np.float64(self.bits),
                           self.signed, self.narrow, self.rounding)

    def nodes(self, name, source):
        inits = [numpy_helper.from_array(np.asarray(v, np.float32), f"{name}.{k}")
                 for k, v in (("s", self.scale), ("z", self.zero), ("b", self.bits))]
        node = helper.make_node("Quant", [source, f"{name}.s", f"{name}.z", f"{name}.b"],
                                [name], name=name, domain=DOMAIN, signed=self.signed,
                                narrow=self.narrow, rounding_mode=self.rounding)
        return [node], inits


def mlp(input_q, layers, features):
    """A QONNX MLP: ``input_q`` on x, then per layer ``(W, weight Q, b, act Q or None,
    relu)``; returns (model, reference forward of float64 x → logits)."""
    nodes, inits, value = [], [], "x"
    if input_q is not None:
        n, i = input_q.nodes("xq", "x")
        nodes, inits, value = nodes + n, inits + i, "xq"
    for index, (w, wq, b, aq, relu) in enumerate(layers):
        inits += [numpy_helper.from_array(w.astype(np.float32), f"W{index}"),
                  numpy_helper.from_array(b.astype(np.float32), f"B{index}")]
        weight = f"W{index}"
        if wq is not None:
            n, i = wq.nodes(f"W{index}q", weight)
            nodes, inits, weight = nodes + n, inits + i, f"W{index}q"
        nodes.append(helper.make_node("Gemm", [value, weight, f"B{index}"], [f"h{index}"],
                                      transB=1, name=f"fc{index}"))
        value = f"h{index}"
        if relu:
            nodes.append(helper.make_node("Relu", [value], [f"r{index}"], name=f"relu{index}"))
            value = f"r{index}"
        if aq is not None:
            n, i = aq.nodes(f"a{index}", value)
            nodes, inits, value = nodes + n, inits + i, f"a{index}"
    graph = helper.make_graph(nodes, "qmlp", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", features])], [helper.make_tensor_value_info(
            value, TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid(DOMAIN, 2)])

    def forward(x):
        h = input_q(x) if input_q is not None else np.asarray(x, np.float64)
        for w, wq, b, aq, relu in layers:
            weight = wq(w.astype(np.float32)) if wq is not None else w.astype(np.float32)
            h = h @ weight.T + b.astype(np.float32)
            h = np.maximum(h, 0) if relu else h
            h = aq(h) if aq is not None else h
        return h
    return model, forward


def random_mlp(seed, input_q, hidden_q, weight_q=None, readout_q=None, sizes=(12, 16, 5)):
    rng = np.random.default_rng(seed)
    n_in, n_hidden, n_out = sizes
    w1, w2 = rng.normal(0, 1, (n_hidden, n_in)), rng.normal(0, 1, (n_out, n_hidden))
    weight_q = weight_q or Q(np.abs(w1).max() / 127, 8, signed=1, narrow=1)
    readout_q = readout_q or Q(np.abs(w2).max() / 127, 8, signed=1, narrow=1)
    b1, b2 = rng.normal(0, 0.5, n_hidden), rng.normal(0, 0.5, n_out)
    return mlp(input_q, [(w1, weight_q, b1, hidden_q, True), (w2, readout_q, b2, None, False)],
               n_in)


def assert_exact(model, forward, x):
    net = convert(model, x)
    logits = forward(x)
    trace = closed_form(net, net.encoder.encode(x))
    assert np.array_equal(trace.classes, logits.argmax(axis=1))
    unit = net.layers[-1].scale[0]      # float biases: held to half a logit unit
    assert np.abs(trace.logits * unit - logits).max() <= unit + 1e-5
    return net


X = np.random.default_rng(1).uniform(-1, 3, (400, 12))


@pytest.mark.parametrize("rounding", ["ROUND", "FLOOR", "CEIL", "HALF_UP", "HALF_DOWN", "UP",
                                      "DOWN"])
def test_every_rounding_mode_of_the_hidden_quantizer_is_exact(rounding):
    model, forward = random_mlp(0, Q(3 / 127, 8, signed=1), Q(0.37, 4, rounding=rounding))
    assert_exact(model, forward, X)


def power_of_two_mlp(rounding):
    rng = np.random.default_rng(2)
    w1 = rng.integers(-100, 100, (16, 12)) / 64
    return mlp(Q(2.0 ** -5, 8, signed=1), [
        (w1, Q(2.0 ** -6, 8, signed=1), rng.integers(-50, 50, 16) / 2 ** 11,
         Q(0.25, 3, rounding=rounding), True),
        (rng.integers(-100, 100, (5, 16)) / 64, Q(2.0 ** -6, 8, signed=1),
         np.zeros(5), None, False)], 12)


@pytest.mark.parametrize("rounding", ["HALF_UP", "FLOOR"])
def test_power_of_two_scales_map_with_plain_ramps_and_their_ties(rounding):
    """Steps 2^-k: the ties of the activation quantizer are reached; the ramp is
    ``s_out / (δ·s_in) = 2^9`` and the multiplier 1."""
    model, forward = power_of_two_mlp(rounding)
    x = np.round(X * 2 ** 5) / 2 ** 5 + 2 ** -7     # between input levels: no input ties
    net = assert_exact(model, forward, x)
    assert np.all(net.layers[0].ramp == 512)


def test_per_channel_weight_scales_and_a_signed_input_with_zero_point():
    rng = np.random.default_rng(3)
    channel_scale = rng.uniform(0.005, 0.03, (16, 1))
    model, forward = random_mlp(3, Q(0.017, 8, zero=9.0), Q(0.41, 4),
                                weight_q=Q(channel_scale, 8, signed=1, narrow=1))
    assert_exact(model, forward, X)


def test_signed_quantizer_after_a_relu_is_an_unsigned_window():
    model, forward = random_mlp(4, Q(3 / 127, 8, signed=1), Q(0.3, 5, signed=1))
    assert assert_exact(model, forward, X).layers[0].act_bits == 4    # 0..15 after the ReLU


def test_a_narrow_unsigned_hidden_window_is_refused():
    """0..14: the ramp would reach level 15 one step after 14."""
    model, _ = random_mlp(5, Q(3 / 127, 8, signed=1), Q(0.3, 4, narrow=1))
    assert "node 'fc0' (Gemm): output channel 0's quantizer cannot be held by an integer " \
        "ramp with a weight multiplier up to 65536 (its window 0..14 is narrower than " \
        "2**4 − 1 and the ramp cannot keep the top level out of reach)" in refused(model)


def test_an_unsigned_quantizer_without_relu_acts_as_one():
    model, forward = random_mlp(6, Q(3 / 127, 8, signed=1), None)
    rng = np.random.default_rng(6)
    layers = [(rng.normal(0, 1, (16, 12)), Q(0.02, 8, signed=1), rng.normal(0, .5, 16),
               Q(0.4, 4), False),
              (rng.normal(0, 1, (5, 16)), Q(0.02, 8, signed=1), rng.normal(0, .5, 5), None,
               False)]
    model, forward = mlp(Q(3 / 127, 8, signed=1), layers, 12)
    assert_exact(model, forward, X)


# -- refusals -----------------------------------------------------------------------------
def refused(model, calib=X):
    with pytest.raises(OnespikeError) as info:
        convert(model, calib)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_round_half_to_even_ties_are_refused():
    """Power-of-two steps reach the ties, which half-to-even rounds up for even levels and
    down for odd ones: no ramp does that."""
    message = refused(power_of_two_mlp("ROUND")[0], np.round(X * 32) / 32 + 2 ** -7)
    assert message.startswith("the model's quantizers cannot be held exactly: node 'fc0' "
                              "(Gemm): output channel ")
    assert "rounds ties half to even" in message and message.endswith(
        "convert with --recalibrate (recalibrate=True) to replace them by onespike's own "
        "calibration")


def test_signed_activation_feeding_a_spiking_layer_is_refused():
    rng = np.random.default_rng(7)
    model, _ = mlp(Q(0.03, 8, signed=1), [
        (rng.normal(0, 1, (16, 12)), Q(0.02, 8, signed=1), np.zeros(16), Q(0.4, 4, signed=1),
         False),
        (rng.normal(0, 1, (5, 16)), Q(0.02, 8, signed=1), np.zeros(5), None, False)], 12)
    assert "node 'a0' (qonnx.custom_op.general:Quant): a signed activation (-8..7) without a " \
        "ReLU feeds the next layer; spikes carry non-negative integers only" in refused(model)


def test_a_zero_point_on_a_hidden_activation_is_refused():
    model, _ = random_mlp(8, Q(0.03, 8, signed=1), Q(0.4, 4, zero=2.0))
    assert "node 'a0' (qonnx.custom_op.general:Quant): a non-zero zero point [2.0] on a " \
        "spiking layer's activations; a silent neuron (no spike) must mean 0" in refused(model)


def test_a_narrow_range_input_is_refused():
    model, _ = random_mlp(9, Q(0.03, 8, signed=1, narrow=1), Q(0.4, 4))
    assert "node 'xq' (qonnx.custom_op.general:Quant): the input window -127..127 has 255 " \
        "levels (a narrow-range or wide quantizer); the encoder's window is 2**b levels" \
        in refused(model)


def test_per_channel_readout_weights_are_refused():
    model, _ = random_mlp(10, Q(0.03, 8, signed=1), Q(0.4, 4),
                          readout_q=Q(np.linspace(0.01, 0.02, 5)[:, None], 8, signed=1))
    assert "node 'fc1' (Gemm): the readout's weights have one scale per class" \
        in refused(model)


def test_an_output_quantizer_is_refused():
    rng = np.random.default_rng(11)
    model, _ = mlp(Q(0.03, 8, signed=1), [
        (rng.normal(0, 1, (16, 12)), Q(0.02, 8, signed=1), np.zeros(16), Q(0.4, 4), True),
        (rng.normal(0, 1, (5, 16)), Q(0.02, 8, signed=1), np.zeros(5), Q(0.1, 8, signed=1),
         False)], 12)
    assert "node 'a1' (qonnx.custom_op.general:Quant): a quantizer after the readout layer" \
        in refused(model)


def test_float_weights_unquantized_activations_and_input_are_refused():
    rng = np.random.default_rng(12)
    w1, w2 = rng.normal(0, 1, (16, 12)), rng.normal(0, 1, (5, 16))
    float_weights, _ = mlp(Q(0.03, 8, signed=1), [
        (w1, None, np.zeros(16), Q(0.4, 4), True),
        (w2, Q(0.02, 8, signed=1), np.zeros(5), None, False)], 12)
    assert "node 'fc0' (Gemm): its weights are float (no weight quantizer)" \
        in refused(float_weights)
    float_acts, _ = mlp(Q(0.03, 8, signed=1), [
        (w1, Q(0.02, 8, signed=1), np.zeros(16), None, True),
        (w2, Q(0.02, 8, signed=1), np.zeros(5), Q(0.4, 4), True),
        (rng.normal(0, 1, (3, 5)), Q(0.02, 8, signed=1), np.zeros(3), None, False)], 12)
    assert "node 'fc0' (Gemm): its ReLU output has no quantizer" in refused(float_acts)
    no_input, _ = mlp(None, [(w1, Q(0.02, 8, signed=1), np.zeros(16), Q(0.4, 4), True),
                             (w2, Q(0.02, 8, signed=1), np.zeros(5), None, False)], 12)
    assert "the model's input is not quantized" in refused(no_input)


def test_integer_onnx_operators_name_the_qonnx_export():
    model, _ = random_mlp(13, Q(0.03, 8, signed=1), Q(0.4, 4))
    node = model.graph.node[0]
    node.CopyFrom(helper.make_node("QuantizeLinear", ["x", "xq.s"], ["xq"], name="ql"))
    assert refused(model) == ("node 'ql' (QuantizeLinear): a QuantizeLinear not followed by "
                              "its DequantizeLinear (integer operators such as QLinearConv "
                              "are not read); export the model with Brevitas' export_qonnx "
                              "(QONNX Quant nodes) or export_onnx_qcdq")


def test_recalibrate_replaces_the_quantizers_and_says_so():
    model, _ = random_mlp(14, Q(0.03, 8, signed=1), Q(0.4, 4, zero=2.0))
    notes = []
    net = convert(model, X, recalibrate=True, notes=notes)
    assert net.layers[0].act_bits == 4 and net.encoder.act_bits == 8
    assert notes[0].startswith("recalibrated: the model's 4 quantizers were replaced by "
                               "onespike's calibration (act_bits 4, weight_bits 8, "
                               "input_bits 8): node 'xq'")


def test_convert_command_reads_the_quantizers_or_recalibrates(tmp_path, capsys):
    from onespike.cli import main

    np.save(tmp_path / "calib.npy", X)
    exact, _ = random_mlp(15, Q(0.03, 8, signed=1), Q(0.4, 2))
    onnx.save(exact, tmp_path / "exact.onnx")
    assert main(["convert", str(tmp_path / "exact.onnx"), "--calib",
                 str(tmp_path / "calib.npy"), "-o", str(tmp_path / "exact.npz")]) == 0
    out = capsys.readouterr().out
    assert "note: read the model's own quantizers: node 'xq'" in out
    assert "note: act_bits 4 not used: the model's quantizers fix the bits (hidden 2, " \
        "input 8); --recalibrate chooses them" in out
    narrow, _ = random_mlp(5, Q(3 / 127, 8, signed=1), Q(0.3, 4, narrow=1))
    onnx.save(narrow, tmp_path / "narrow.onnx")
    args = ["convert", str(tmp_path / "narrow.onnx"), "--calib", str(tmp_path / "calib.npy"),
            "-o", str(tmp_path / "narrow.npz")]
    assert main(args) == 2
    assert "convert with --recalibrate" in capsys.readouterr().err
    assert main(args + ["--recalibrate"]) == 0
    assert "note: recalibrated: the model's 4 quantizers were replaced" in \
        capsys.readouterr().out
