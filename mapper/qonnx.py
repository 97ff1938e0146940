"""Quantized ONNX (QONNX ``Quant`` nodes, or QCDQ: ``QuantizeLinear`` → ``Clip`` →
``DequantizeLinear``) → the integer network that reproduces the model's *own* quantizers.

A quantization-aware trained model (Brevitas ``export_qonnx`` / ``export_onnx_qcdq``) fixes
every integer: its input quantizer gives the encoder, its weight quantizers the integer
weights, its activation quantizers each layer's integer activations. Nothing is
recalibrated. The quantizers are read into :class:`Quantizer` records and removed from the
graph (weights become their integers, activation quantizers ``Identity`` nodes), so the
float front end (:mod:`onespike.mapper.onnx_frontend`) reads the layers as usual.

Why it is exact. A hidden layer's integer sum ``Y = Σ w·a`` (the model's integer weights
and the previous layer's integer activations) becomes the float pre-activation
``y = α·(Y + β)`` (``α`` = the weight step times the input step times any batch-norm factor
and average-pooling ``1/(kh·kw)``, ``β`` = the bias over ``α``), and the model's activation
``clip(round(y / s), 0, A)`` is a non-decreasing step function of the integer ``Y``: it
reaches level ``k`` exactly at an integer threshold ``T_k`` (found from the rounding mode,
ties included). The IR's neuron ``clip(floor((m·Y + c) / R), 0, A)`` reaches ``k`` at
``m·Y + c ≥ k·R``. :func:`_solve_ramp` finds the smallest integer multiplier ``m`` with an
integer ramp ``R`` and bias ``c`` that put every threshold where the model has it, for
every ``Y`` the layer can reach (``[Σ min(w, 0)·A_in, Σ max(w, 0)·A_in]``, not only the
calibration data), per output channel. Scales need not be powers of two (a power-of-two
step ratio gives ``m = 1``); per-channel weight scales give per-channel ``m`` and ``R``.

The readout's logits ``α·(Y + β)`` share one scale when its weights have one: the integer
logits are ``K·Y + round(K·β)`` with ``K = 1`` when the biases are integers in the
product step (Brevitas' ``Int32Bias``), else the smallest power of two that keeps every
pair of classes in the same order for every ``Y`` (their bias differences are held to
better than one logit unit).

What cannot be held exactly is refused with the reason (or, with ``recalibrate=True``,
replaced by the mapper's own calibration, saying what was replaced): a signed activation
feeding a spiking layer (spikes carry non-negative integers), a zero point on a hidden
activation (a silent neuron must mean 0), a narrow-range or odd-sized input window (the
encoder's window is ``2**b − 1``), a narrow-range hidden window whose top level the ramp
cannot keep out of reach, per-channel scales on the readout's weights (the logits would
need one scale per class), an output quantizer after the readout, float (unquantized)
weights or activations, and layers or affine maps between a quantizer and the layer it
feeds that change the quantized values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onespike.errors import OnespikeError

__all__ = ["Quantizer", "is_quantized", "convert_quantized"]

_QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas")
#: QONNX's rounding modes (``UP``/``DOWN``: away from / towards zero)
_ROUNDINGS = ("ROUND", "HALF_EVEN", "HALF_UP", "HALF_DOWN", "FLOOR", "CEIL", "UP", "DOWN")
#: largest weight multiplier ``m`` tried per channel
MAX_MULTIPLIER = 1 << 16


@dataclass(frozen=True)
class Quantizer:
    """One quantizer as the model defines it: ``q = clip(rnd(x / scale + zero_point), low,
    high)``, value ``(q − zero_point)·scale``; ``scale`` and ``zero_point`` broadcast like
    the tensor (per tensor, or per channel)."""
    label: str
    scale: np.ndarray
    zero_point: np.ndarray
    low: int
    high: int
    rounding: str

    def integers(self, x):
        v = np.clip(np.asarray(x, np.float64) / self.scale + self.zero_point, self.low,
                    self.high)
        return _ROUND_FUNCTIONS[self.rounding](v)

    def describe(self):
        scale = np.unique(self.scale)
        shown = f"{scale[0]:.6g}" if len(scale) == 1 else f"{len(scale)} per-channel"
        return f"{self.label}: integers {self.low}..{self.high}, scale {shown}"


_ROUND_FUNCTIONS = {"ROUND": np.round, "HALF_EVEN": np.round,
                    "HALF_UP": lambda v: np.sign(v) * np.floor(np.abs(v) + 0.5),
                    "HALF_DOWN": lambda v: np.sign(v) * np.ceil(np.abs(v) - 0.5),
                    "FLOOR": np.floor, "CEIL": np.ceil,
                    "UP": lambda v: np.sign(v) * np.ceil(np.abs(v)), "DOWN": np.fix}


def is_quantized(model):
    """Whether an ONNX ``model`` holds QONNX or QCDQ quantizers."""
    return any(_is_quant(n) or n.op_type in ("QuantizeLinear", "DequantizeLinear")
               for n in model.graph.node)


def _is_quant(node):
    return node.op_type == "Quant" and node.domain in _QONNX_DOMAINS


# -- reading the quantizers ---------------------------------------------------------------
def _label(node):
    from onespike.mapper.onnx_frontend import _label as label
    return label(node)


def _scalar_int(value, what, node):
    value = np.asarray(value).reshape(-1)
    if value.size != 1 or value[0] != np.round(value[0]):
        raise OnespikeError(f"{_label(node)}: its {what} {value.tolist()} is not one integer")
    return int(value[0])


def _quant_record(node, constants):
    """A :class:`Quantizer` of a QONNX ``Quant`` node."""
    from onespike.mapper.onnx_frontend import _attrs

    if len(node.input) != 4:
        raise OnespikeError(f"{_label(node)}: a Quant node takes 4 inputs (x, scale, zero "
                            f"point, bit width), not {len(node.input)}")
    for index, what in ((1, "scale"), (2, "zero point"), (3, "bit width")):
        if node.input[index] not in constants:
            raise OnespikeError(f"{_label(node)}: its {what} is computed in the graph; "
                                f"onespike reads constant quantizer parameters only")
    attrs = _attrs(node)
    bits = _scalar_int(constants[node.input[3]], "bit width", node)
    signed, narrow = bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0))
    rounding = str(attrs.get("rounding_mode", "ROUND")).upper()
    if rounding not in _ROUNDINGS:
        raise OnespikeError(f"{_label(node)}: rounding mode {rounding} is not one of "
                            f"{', '.join(_ROUNDINGS)}")
    if bits < 2 and signed:
        raise OnespikeError(f"{_label(node)}: a 1-bit signed (bipolar) quantizer has no zero "
                            f"level; onespike maps ReLU networks")
    if signed:
        low, high = -(1 << (bits - 1)) + narrow, (1 << (bits - 1)) - 1
    else:
        low, high = 0, (1 << bits) - 1 - narrow
    return Quantizer(_label(node), np.asarray(constants[node.input[1]], np.float64),
                     np.asarray(constants[node.input[2]], np.float64), low, high, rounding)


def _qcdq_record(quantize, clip, dequantize, constants):
    """A :class:`Quantizer` of ``QuantizeLinear`` (→ ``Clip``) → ``DequantizeLinear``."""
    from onnx import TensorProto

    from onespike.mapper.onnx_frontend import _attrs

    label = _label(quantize)
    for node in (quantize, dequantize):
        for index in (1, 2):
            if index < len(node.input) and node.input[index] \
                    and node.input[index] not in constants:
                raise OnespikeError(f"{_label(node)}: its scale or zero point is computed "
                                    f"in the graph; onespike reads constant ones only")
    scale = np.asarray(constants[quantize.input[1]], np.float64)
    zero = constants.get(quantize.input[2]) if len(quantize.input) > 2 else None
    dtype = np.asarray(zero).dtype if zero is not None else np.dtype(np.uint8)
    if _attrs(quantize).get("output_dtype") not in (None, 0):
        dtype = np.dtype({TensorProto.INT8: np.int8, TensorProto.UINT8: np.uint8}.get(
            _attrs(quantize)["output_dtype"], np.int32))
    if dtype not in (np.int8, np.uint8):
        raise OnespikeError(f"{label}: a {dtype} QuantizeLinear; onespike reads 8-bit ones")
    info = np.iinfo(dtype)
    low, high = int(info.min), int(info.max)
    if clip is not None:
        bounds = [_scalar_int(constants[name], "clip bound", clip)
                  for name in clip.input[1:3] if name]
        if len(bounds) != 2:
            raise OnespikeError(f"{_label(clip)}: a Clip between QuantizeLinear and "
                                f"DequantizeLinear needs both bounds")
        low, high = max(low, bounds[0]), min(high, bounds[1])
    dq_scale = np.asarray(constants[dequantize.input[1]], np.float64)
    if not np.array_equal(dq_scale, scale):
        raise OnespikeError(f"{_label(dequantize)}: dequantizes with another scale than "
                            f"{label} quantizes; onespike reads matching pairs only")
    zero = np.zeros(1) if zero is None else np.asarray(zero, np.float64)
    axis = _attrs(quantize).get("axis", 1)
    return Quantizer(label, scale, zero, low, high, "ROUND"), axis


def _per_axis(record, axis, rank):
    """A per-axis (1-D) scale and zero point of QCDQ shaped to broadcast over a tensor of
    ``rank`` dimensions."""
    if record.scale.ndim != 1 or record.scale.size == 1:
        return record
    shape = [1] * rank
    shape[axis % rank] = -1
    return Quantizer(record.label, record.scale.reshape(shape),
                     record.zero_point.reshape(shape) if record.zero_point.size > 1
                     else record.zero_point, record.low, record.high, record.rounding)


@dataclass
class _Stripped:
    """The model without quantizers, and what they were: ``weights`` maps a weight tensor's
    name (now holding the integers ``q − zero_point``) to its quantizer, ``activations``
    an ``Identity`` node's output (where the quantizer was) to its quantizer."""
    model: object
    weights: dict
    activations: dict


def strip_quantizers(model):
    """:class:`_Stripped` of a quantized ONNX ``model`` (a copy; ``model`` is unchanged)."""
    import onnx
    from onnx import helper, numpy_helper

    from onespike.mapper.onnx_frontend import _constants

    constants = _constants(model)
    consumers = {}
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, index))
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    weights, activations, skip, new_constants = {}, {}, set(), {}
    nodes = list(model.graph.node)
    for node in nodes:
        if id(node) in skip:
            continue
        record, source, output = None, None, None
        if _is_quant(node):
            record, source, output = _quant_record(node, constants), node.input[0], \
                node.output[0]
        elif node.op_type == "QuantizeLinear":
            users = consumers.get(node.output[0], [])
            clip = users[0][0] if len(users) == 1 and users[0][0].op_type == "Clip" else None
            after = consumers.get(clip.output[0], []) if clip is not None else users
            if len(after) != 1 or after[0][0].op_type != "DequantizeLinear":
                raise OnespikeError(f"{_label(node)}: a QuantizeLinear not followed by its "
                                    f"DequantizeLinear (integer operators such as QLinearConv "
                                    f"are not read); export the model with Brevitas' "
                                    f"export_qonnx (QONNX Quant nodes) or export_onnx_qcdq")
            dequantize = after[0][0]
            record, axis = _qcdq_record(node, clip, dequantize, constants)
            rank = np.ndim(constants[node.input[0]]) if node.input[0] in constants else 2
            record = _per_axis(record, axis, max(rank, 2))
            skip.update({id(dequantize)} | ({id(clip)} if clip is not None else set()))
            source, output = node.input[0], dequantize.output[0]
        elif node.op_type == "DequantizeLinear":
            raise OnespikeError(f"{_label(node)}: a DequantizeLinear of stored integers "
                                f"without its QuantizeLinear is not read; export the model "
                                f"with Brevitas' export_qonnx (QONNX Quant nodes)")
        if record is None:
            out.graph.node.append(node)
            continue
        if source in constants:                   # a weight or bias quantizer
            q = record.integers(constants[source])
            users = consumers.get(output, [])
            is_weight = users and all(n.op_type in ("Gemm", "MatMul", "Conv") and i == 1
                                      for n, i in users)
            if is_weight:
                weights[output] = record
                new_constants[output] = q - record.zero_point
            else:
                new_constants[output] = (q - record.zero_point) * record.scale
        else:
            activations[output] = record
            out.graph.node.append(helper.make_node("Identity", [source], [output],
                                                   name=node.name or output))
    for name, value in new_constants.items():
        out.graph.initializer.append(numpy_helper.from_array(
            np.asarray(value, np.float32), name))     # integers below 2**24: exact
    # the quantizers' own parameters, now unused, stay as initializers (harmless)
    kept = [o for o in out.opset_import if o.domain not in _QONNX_DOMAINS]
    del out.opset_import[:]
    out.opset_import.extend(kept)
    return _Stripped(out, weights, activations)


# -- the chain, with each layer's quantizers ---------------------------------------------
@dataclass
class _Layer:
    """What the quantizers say about one weighted layer: its integer weights ``w`` (in the
    float layer's orientation), the weight step per output channel ``delta``, the activation
    quantizer after it (None for the readout)."""
    weight: np.ndarray
    delta: np.ndarray
    label: str
    act: Quantizer = None


def _parser_class():
    from onespike.mapper.onnx_frontend import _ChainParser, _attrs

    class _QuantParser(_ChainParser):
        """The ONNX chain parser, noting at each weighted layer its weight quantizer and at
        each activation quantizer (an ``Identity`` now) the layer it quantizes."""

        def __init__(self, graph, stripped):
            self.stripped = stripped
            self.input_quant = None
            self.quants = {}                # id(FloatLayer) -> _Layer
            self.problems = []              # reasons the model is not held exactly
            super().__init__(graph)

        def weighted(self, node, axis, alpha=1.0):
            name = node.input[1]
            record = self.stripped.weights.get(name)
            layer = self.layers[-1]
            if record is None:
                self.problems.append(f"{_label(node)}: its weights are float (no weight "
                                     f"quantizer); the model does not fix its integers")
                return
            raw = np.asarray(self.graph.constants[name], np.float64)
            scale = np.broadcast_to(record.scale, raw.shape)
            moved = np.moveaxis(scale, axis, 0).reshape(raw.shape[axis], -1)
            if not np.all(moved == moved[:, :1]):
                self.problems.append(f"{record.label}: its scale varies along the input "
                                     f"axis of {_label(node)}; onespike holds one weight "
                                     f"step per output channel")
                return
            weight = np.rint(np.asarray(layer.weight) / alpha)
            self.quants[id(layer)] = _Layer(weight, moved[:, 0] * alpha, _label(node))

        def before_weighted(self, node):
            if self.pending_affine is not None:
                self.problems.append(f"{_label(node)}: an affine map (batch norm, Add, Mul) "
                                     f"between its input quantizer and the layer changes "
                                     f"the quantized values")

        def gemm(self, node):
            self.before_weighted(node)
            super().gemm(node)
            attrs = _attrs(node)
            self.weighted(node, 0 if attrs.get("transB") else 1, attrs.get("alpha", 1.0))

        def matmul(self, node):
            self.before_weighted(node)
            super().matmul(node)
            self.weighted(node, 1)

        def conv(self, node):
            self.before_weighted(node)
            super().conv(node)
            self.weighted(node, 0)

        def identity(self, node):
            record = self.stripped.activations.get(node.output[0])
            if record is None:
                return super().identity(node)
            super().identity(node)
            affine = [l for l in self.layers if l.kind != "maxpool"]
            if not affine:
                if self.current.target != "input" or self.pending_affine is not None \
                        or self.input_quant is not None:
                    self.problems.append(f"{record.label}: the input quantizer must read "
                                         f"the model's input directly")
                self.input_quant = record
                return
            layer, label = affine[-1], record.label
            info = self.quants.get(id(layer))
            if info is None:
                return
            if info.act is not None:
                self.problems.append(f"{label}: a second quantizer after {layer.name}")
            elif self.pending_pool != (1, 1) or self.pending_affine is not None:
                self.problems.append(f"{label}: pooling or an affine map between "
                                     f"{layer.name} and its quantizer")
            elif not layer.relu and record.low < 0 and node.output[0] != self.graph.output:
                raise OnespikeError(
                    f"{label}: a signed activation ({record.low}..{record.high}) without a "
                    f"ReLU feeds the next layer; spikes carry non-negative integers only "
                    f"(put a ReLU before it, or use an unsigned quantizer)")
            else:
                if not layer.relu and record.low >= 0:   # it clips at 0: a ReLU
                    self.relu(label, None)
                info.act = record

    return _QuantParser


def _float_layers(layers, quants):
    """The float layers (dequantized weights) of the parsed chain, for float reference
    runs and recalibration."""
    import copy

    out = []
    for layer in layers:
        info = quants.get(id(layer))
        layer = copy.copy(layer)
        if info is not None:
            shape = (-1,) + (1,) * (layer.weight.ndim - 1)
            layer.weight = layer.weight * info.delta.reshape(shape)
        out.append(layer)
    return out


# -- the exact integers -------------------------------------------------------------------
def _thresholds(rho, beta, levels, top, rounding):
    """``T_k`` (k = 1..levels): the smallest integer ``Y`` whose activation
    ``rnd(ρ·(Y + β))`` reaches ``k``; levels above ``top`` are never reached (``None``)."""
    out = []
    for k in range(1, levels + 1):
        if k > top:
            out.append(None)
            continue
        # level k ≥ 1 lies where v > 0, so the modes towards or away from zero are those
        # towards −∞ or +∞ there
        half = {"FLOOR": 0.0, "DOWN": 0.0, "CEIL": 1.0, "UP": 1.0}.get(rounding, 0.5)
        inclusive = {"HALF_UP": True, "HALF_DOWN": False, "FLOOR": True, "DOWN": True,
                     "CEIL": False, "UP": False}.get(rounding, k % 2 == 0)
        bound = (k - half) / rho - beta
        out.append(int(np.ceil(bound)) if inclusive else int(np.floor(bound)) + 1)
    return out


def _solve_ramp(thresholds, y_low, y_high, rho):
    """Smallest ``(m, R, c)``, integers with ``m, R ≥ 1``, such that for every integer
    ``Y`` in ``[y_low, y_high]`` and every level ``k``: ``m·Y + c ≥ k·R`` exactly when
    ``Y ≥ T_k`` (``None``: never). None when no ``m`` up to :data:`MAX_MULTIPLIER` does."""
    levels = len(thresholds)
    k = np.arange(1, levels + 1, dtype=np.int64)
    t = np.array([y_high + 1 if v is None else min(max(v, y_low), y_high + 1)
                  for v in thresholds], dtype=np.int64)
    lower = t <= y_high                 # reached within the range: c ≥ k·R − m·T_k
    upper = t > y_low                   # not reached below T_k: c ≤ k·R − m·(T_k − 1) − 1
    start = 1
    for stop in (64, 2048, MAX_MULTIPLIER):
        m = np.arange(start, stop + 1, dtype=np.int64)
        base = np.minimum(np.floor(m / rho), float(1 << 40)).astype(np.int64)
        cand_m = np.repeat(m, 4)
        cand_r = np.maximum((base[:, None] + np.arange(-1, 3)[None, :]).reshape(-1), 1)
        kr = cand_r[:, None] * k[None, :]
        mt = cand_m[:, None] * t[None, :]
        big = np.int64(1) << 62
        low_c = np.where(lower[None, :], kr - mt, -big).max(axis=1)
        high_c = np.where(upper[None, :], kr - cand_m[:, None] * (t[None, :] - 1) - 1,
                          big).min(axis=1)
        ok = np.nonzero(low_c <= high_c)[0]
        if len(ok):
            i = ok[0]
            c = low_c[i] if low_c[i] > -big else (high_c[i] if high_c[i] < big else 0)
            return int(cand_m[i]), int(cand_r[i]), int(c)
        start = stop + 1
    return None


def _y_range(weight, levels_in, area):
    """Per output channel the reachable ``[min, max]`` of ``Σ w·a`` with ``a ∈ [0, A]``."""
    rows = weight.reshape(len(weight), -1)
    return (np.minimum(rows, 0).sum(axis=1) * levels_in * area,
            np.maximum(rows, 0).sum(axis=1) * levels_in * area)


def _encoder(record, input_shape, problems):
    """The IR encoder of the model's input quantizer, and the input's integer zero
    ``z_in`` (the value is ``(a0 − z_in)·scale``)."""
    from onespike.ir import Encoder

    scale = np.unique(record.scale)
    zero = np.unique(record.zero_point)
    levels = record.high - record.low
    bits = int(levels + 1).bit_length() - 1
    if len(scale) != 1 or len(zero) != 1:
        problems.append(f"{record.label}: a per-channel input quantizer; onespike's "
                        f"encoder takes one scale here")
    elif zero[0] != np.round(zero[0]):
        problems.append(f"{record.label}: a fractional zero point {zero[0]}")
    elif (1 << bits) - 1 != levels or not 1 <= bits <= 8:
        problems.append(f"{record.label}: the input window {record.low}..{record.high} has "
                        f"{levels + 1} levels (a narrow-range or wide quantizer); the "
                        f"encoder's window is 2**b levels, b = 1..8")
    elif record.rounding not in ("ROUND", "HALF_EVEN", "HALF_UP", "FLOOR"):
        problems.append(f"{record.label}: rounding mode {record.rounding} at the input; the "
                        f"encoder rounds to nearest (or floors)")
    if problems:
        return None, 0
    s, z = float(scale[0]), float(zero[0])
    offset = (record.low - z + (0.5 if record.rounding == "FLOOR" else 0.0)) * s
    channels = input_shape[0] if len(input_shape) == 3 else 1
    encoder = Encoder(shape=input_shape, act_bits=bits, scale=np.full(channels, s),
                      offset=np.full(channels, offset))
    return encoder, z - record.low


def _exact(chain, parser, calib, notes):
    """The integer network of the model's own quantizers, or raises with the reasons."""
    from onespike.ir import Conv, Dense, MaxPool, Network

    problems = list(parser.problems)
    if parser.input_quant is None:
        problems.append("the model's input is not quantized (no quantizer reads it); the "
                        "encoder's integers are not fixed by the model")
        _refuse(problems)
    encoder, z_in = _encoder(parser.input_quant, chain.input_shape, problems)
    in_scale = float(np.unique(parser.input_quant.scale)[0])
    levels_in = encoder.levels if encoder is not None else 0
    layers, multipliers = [], []
    weighted = [l for l in chain.layers if l.kind != "maxpool"]
    for index, layer in enumerate(chain.layers):
        if layer.kind == "maxpool":
            layers.append(MaxPool(in_shape=layer.in_shape, kernel=layer.kernel,
                                  stride=layer.stride, padding=layer.padding))
            continue
        info = parser.quants.get(id(layer))
        readout = layer is weighted[-1]
        if info is None:
            if not any(layer.name in p for p in problems):
                problems.append(f"{layer.name}: the layer's weights are not read from a "
                                f"weight quantizer")
            continue
        if not readout and info.act is None:
            problems.append(f"{layer.name}: its ReLU output has no quantizer; the model "
                            f"does not fix this layer's integers")
            continue
        if readout and info.act is not None:
            problems.append(f"{info.act.label}: a quantizer after the readout layer; the "
                            f"class is the argmax of the readout's integer sums (remove the "
                            f"output quantizer)")
            continue
        if problems:
            continue
        area = layer.pool[0] * layer.pool[1]
        w = info.weight
        rows = w.reshape(len(w), -1)
        # the float layer is g·w (batch norm folded): recover g per output channel
        norm = (rows ** 2).sum(axis=1)
        g = np.where(norm > 0, (np.asarray(layer.weight).reshape(len(w), -1) * rows)
                     .sum(axis=1) / np.where(norm > 0, norm, 1), 0.0)
        alpha = g * info.delta * in_scale / area
        bias = np.asarray(layer.bias, np.float64)
        if bias.ndim != 1:
            problems.append(f"{layer.name}: a position-dependent bias")
            continue
        first = layer is weighted[0]
        correction = -z_in * rows.sum(axis=1) * area if first else np.zeros(len(w))
        if first and z_in and layer.kind == "conv" and any(layer.padding):
            problems.append(f"{layer.name}: a zero-padded convolution on an input quantizer "
                            f"with a non-zero integer zero ({z_in:g}); its padding would read "
                            f"the integer 0, not the input's zero")
            continue
        y_low, y_high = _y_range(w, levels_in, area)
        common = dict(in_shape=layer.in_shape, pool=layer.pool)
        if layer.kind == "conv":
            common.update(stride=layer.stride, padding=layer.padding)
        kind = Dense if layer.kind == "dense" else Conv
        if readout:
            ir, multiplier = _readout(kind, common, w, alpha, bias, correction, layer.name,
                                      problems)
            if ir is not None:
                layers.append(ir)
                multipliers.append(multiplier)
            continue
        ir, act_levels, scale, multiplier = _hidden(kind, common, w, alpha, bias, correction,
                                                    info.act, y_low, y_high, layer, problems)
        if ir is None:
            continue
        layers.append(ir)
        multipliers.append(multiplier)
        in_scale, levels_in = scale, act_levels
    if problems:
        _refuse(problems)
    net = Network(encoder, tuple(layers))
    if notes is not None:
        notes.append(f"read the model's own quantizers: {parser.input_quant.describe()}; "
                     + "; ".join(f"{l.name}: weights × {m}" for l, m in
                                 zip(weighted, multipliers))
                     + "; exact for every input the layers can receive")
        ties = _input_ties(parser.input_quant, calib)
        if ties:
            notes.append(f"{ties} calibration values lie exactly halfway between two input "
                         f"levels: the model rounds them half to even, the encoder half up")
    return net


def _input_ties(record, x):
    """How many values of ``x`` an input quantizer rounding half to even meets at a tie."""
    if record.rounding not in ("ROUND", "HALF_EVEN"):
        return 0
    v = np.asarray(x, np.float64) / float(np.unique(record.scale)[0]) \
        + float(np.unique(record.zero_point)[0])
    return int(np.sum((v - np.floor(v) == 0.5) & (v > record.low) & (v < record.high)))


def _hidden(kind, common, w, alpha, bias, correction, act, y_low, y_high, layer, problems):
    """A hidden IR layer holding ``clip(rnd((α·Y + b)/s), 0, top)`` exactly, its levels
    (the model's top) and its activation step."""
    scale, zero = np.unique(act.scale), np.unique(act.zero_point)
    if len(scale) != 1:
        problems.append(f"{act.label}: per-channel activation scales; the next layer's "
                        f"integer sum needs one step for all its inputs")
        return None, 0, 0, 0
    if np.any(zero != 0):
        problems.append(f"{act.label}: a non-zero zero point {zero.tolist()} on a spiking "
                        f"layer's activations; a silent neuron (no spike) must mean 0")
        return None, 0, 0, 0
    s = float(scale[0])
    top = act.high
    if layer.cap is not None:        # Clip(0, t) before the quantizer: its top level
        top = min(top, int(act.integers(layer.cap)))
    bits = max(int(top).bit_length(), 1)
    if bits > 8:
        problems.append(f"{act.label}: {bits}-bit activations; onespike's windows hold 1 to "
                        f"8 bits")
        return None, 0, 0, 0
    levels = (1 << bits) - 1
    rows = w.reshape(len(w), -1)
    weight = np.zeros_like(rows, dtype=np.int64)
    out_bias = np.zeros(len(w), np.int64)
    ramp = np.ones(len(w), np.int64)
    largest = 1
    for i in range(len(w)):
        sign = 1 if alpha[i] >= 0 else -1
        lo, hi = (y_low[i], y_high[i]) if sign > 0 else (-y_high[i], -y_low[i])
        if alpha[i] == 0 or not np.any(rows[i]):
            level = int(np.clip(act.integers(bias[i] + alpha[i] * correction[i]), 0, top))
            out_bias[i] = level                     # floor(level / 1), every input
            continue
        rho = abs(alpha[i]) / s
        beta = sign * (correction[i] + bias[i] / alpha[i])
        found = _solve_ramp(_thresholds(rho, beta, levels, top, act.rounding), int(lo),
                            int(hi), rho)
        if found is None:
            why = (f" (its window 0..{top} is narrower than 2**{bits} − 1 and the ramp cannot "
                   f"keep the top level out of reach)") if top != levels else ""
            if act.rounding in ("ROUND", "HALF_EVEN") and _reaches_ties(rho, beta, top, lo,
                                                                         hi):
                why = (" (it rounds ties half to even, up for even levels and down for odd "
                       "ones, and its steps reach the ties; a ramp rounds every tie the "
                       "same way: use HALF_UP or FLOOR rounding in the quantizer)")
            problems.append(f"{layer.name}: output channel {i}'s quantizer cannot be held "
                            f"by an integer ramp with a weight multiplier up to "
                            f"{MAX_MULTIPLIER}{why}")
            return None, 0, 0, 0
        m, r, c = found
        weight[i] = sign * m * rows[i].astype(np.int64)
        out_bias[i], ramp[i] = c, r
        largest = max(largest, m)
    ir = kind(weight=weight.reshape(w.shape), bias=out_bias, ramp=ramp, act_bits=bits,
              scale=np.full(len(w), s), **common)
    return ir, top, s, largest


def _reaches_ties(rho, beta, top, y_low, y_high):
    """Whether some integer ``Y`` in range lands exactly on ``ρ·(Y + β) = k − 1/2``."""
    for k in range(1, top + 1):
        y = (k - 0.5) / rho - beta
        if y == np.round(y) and y_low <= y <= y_high:
            return True
    return False


def _readout(kind, common, w, alpha, bias, correction, name, problems):
    """The readout with one logit scale: ``K·Y + round(K·β)``; ``K`` keeps the order of
    every pair of classes for every integer ``Y``."""
    if not np.allclose(alpha, alpha[0], rtol=1e-9, atol=0) or alpha[0] <= 0:
        problems.append(f"{name}: the readout's weights have one scale per class "
                        f"(a per-channel weight quantizer, or a batch norm after it); the "
                        f"integer logits need one scale for all classes: quantize the "
                        f"last layer's weights per tensor")
        return None, 0
    beta = correction + bias / alpha[0]
    frac = beta - np.floor(beta + 0.5)
    if np.all(np.abs(frac) < 1e-6):
        k = 1
        ints = np.floor(beta + 0.5)
    else:
        gaps = np.abs(frac[:, None] - frac[None, :])
        gaps = np.minimum(gaps, 1 - gaps)
        gaps = gaps[gaps > 1e-6]
        k = 1
        while gaps.size and k * gaps.min() <= 1 and k < (1 << 24):
            k *= 2
        ints = np.floor(k * beta + 0.5)
    rows = w.reshape(len(w), -1)
    ir = kind(weight=(k * rows).astype(np.int64).reshape(w.shape), bias=ints.astype(np.int64),
              ramp=None, act_bits=None, scale=np.full(len(w), alpha[0] / k), **common)
    return ir, k


def _refuse(problems):
    raise OnespikeError(f"the model's quantizers cannot be held exactly: {problems[0]}"
                        + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                        + "; convert with --recalibrate (recalibrate=True) to replace them "
                          "by onespike's own calibration")


# -- entry point ---------------------------------------------------------------------------
def convert_quantized(model, calib, *, recalibrate=False, act_bits=None, weight_bits=None,
                      input_bits=None, notes=None):
    """The integer network of a quantized ONNX ``model`` (a loaded ``ModelProto``) with its
    own quantizers; with ``recalibrate``, the mapper's calibration on its float layers
    (weights dequantized), bits from the model unless given."""
    from onespike.mapper.onnx_frontend import _OnnxGraph
    from onespike.mapper.quantize import quantize

    input_bits = None if input_bits == "auto" else input_bits
    stripped = strip_quantizers(model)
    parser = _parser_class()(_OnnxGraph(stripped.model, calib[0]), stripped)
    chain = parser.run()
    x = chain.network_inputs(calib)
    floats = _float_layers(chain.layers, parser.quants)
    if recalibrate:
        acts = [q.act for q in parser.quants.values() if q.act is not None]
        model_act = max([int(a.high).bit_length() for a in acts], default=4)
        model_weight = max([int(max(abs(r.low), abs(r.high))).bit_length() + 1
                            for r in stripped.weights.values()], default=8)
        inq = parser.input_quant
        model_input = int(inq.high - inq.low).bit_length() if inq is not None else None
        bits = dict(act_bits=min(act_bits or model_act, 8),
                    weight_bits=min(max(weight_bits or model_weight, 2), 16),
                    input_bits=None if (input_bits or model_input) is None
                    else min(input_bits or model_input, 8))
        if notes is not None:
            replaced = ([inq.describe()] if inq is not None else []) + \
                [r.describe() for r in stripped.weights.values()] + [a.describe() for a in acts]
            notes.append(f"recalibrated: the model's {len(replaced)} quantizers were "
                         f"replaced by onespike's calibration (act_bits {bits['act_bits']}, "
                         f"weight_bits {bits['weight_bits']}, input_bits "
                         f"{bits['input_bits'] or bits['act_bits']}): " + "; ".join(replaced))
        return quantize(chain.input_shape, floats, x, notes=notes, **bits)
    net = _exact(chain, parser, x, notes)
    if notes is not None:
        hidden = sorted({l.act_bits for l in net.layers if getattr(l, "ramp", None) is not None})
        unused = [f"{name} {value}" for name, value, held in (
            ("act_bits", act_bits, hidden), ("input_bits", input_bits,
                                             [net.encoder.act_bits]))
            if value is not None and [value] != held]
        if unused:
            notes.append(f"{', '.join(unused)} not used: the model's quantizers fix the bits "
                         f"(hidden {', '.join(map(str, hidden)) or '-'}, input "
                         f"{net.encoder.act_bits}); --recalibrate chooses them")
    return net
