"""ONNX front end: an ``onnx.ModelProto`` or ``.onnx`` file → the chain of float layers the
PyTorch front end produces, for the same quantizer, checks and messages.

The graph is read, never run: no custom-operator library is loaded and no node is
executed. Initializers, ``Constant`` nodes and the few operators that only reshape or cast
constants are folded to numpy arrays; ``onnx.shape_inference`` fixes every shape once the
batch dimension (symbolic or not) and any other symbolic input size (from the calibration
data) are set. Each operator on the one chain from the input to the output is then
translated into the ATen operator the PyTorch front end reads (``Gemm`` → ``aten.linear``,
``Conv`` → ``aten.conv2d``/``conv1d``, …), its attributes renamed to ATen's arguments, and
handed to that front end's parser: batch-norm folding, pooling, saturating ReLUs, padding
and every refusal are one code for both formats, and the same network from PyTorch and from
its ONNX export gives the same float layers.

Layout: a channels-last input (as Keras/tf2onnx export it: ``NHWC`` or ``NLC`` followed by a
``Transpose`` to channels-first) maps to the channels-first network; the network's inputs
are then the transposed samples (:attr:`OnnxChain.input_axes`). A ``Transpose`` back to
channels-last right before a flatten becomes an order of the next dense layer's columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onespike.errors import OnespikeError
from onespike.mapper.frontend import (_Parser, _avg_pool_factor, _finish, _pooled_shape,
                                      _relu_cap, _shape, _zero_padding)

__all__ = ["OnnxChain", "load_onnx", "parse_onnx", "SUPPORTED_ONNX", "FIRST_OPSET"]

FIRST_OPSET = 13
SUPPORTED_ONNX = ("Gemm", "MatMul (+ Add)", "Conv (1-D, 2-D)", "Relu", "Clip (min 0)",
                  "MaxPool", "AveragePool", "GlobalAveragePool", "ReduceMean (spatial axes)",
                  "BatchNormalization", "Add/Sub/Mul/Div by a per-channel constant",
                  "Flatten", "Reshape/Squeeze/Unsqueeze (to a flat vector)",
                  "Transpose (of a channels-last input)", "Dropout", "Identity",
                  "Pad (zeros, before a Conv)")
_DEFAULT_DOMAINS = ("", "ai.onnx")
# operators that only move or cast constants: folded when all their inputs are constant
_FOLDABLE = ("Identity", "Cast", "Reshape", "Squeeze", "Unsqueeze")
_QUANTIZED = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
              "QLinearMatMul", "ConvInteger", "MatMulInteger")
# a channels-last input (NHWC, NLC) converted to channels-first, and back before a flatten
_TO_CHANNELS_FIRST = {4: (0, 3, 1, 2), 3: (0, 2, 1)}
_TO_CHANNELS_LAST = {4: (0, 2, 3, 1), 3: (0, 2, 1)}


def _onnx():
    try:
        import onnx
    except ImportError:
        raise OnespikeError("reading ONNX models needs the onnx package: pip install "
                            "'onespike[onnx]'") from None
    return onnx


@dataclass(frozen=True)
class OnnxChain:
    """What the front end read: the network's input shape (channels first, a 1-D signal as
    ``(C, 1, L)``), its float layers, and ``input_axes``, the permutation of one model input
    sample's axes into the network's layout (None when the model is channels-first)."""
    input_shape: tuple
    layers: list
    input_axes: tuple = None

    def network_inputs(self, x):
        """Model inputs ``x`` (batch first) in the network's layout."""
        x = np.asarray(x)
        if self.input_axes is None:
            return x
        axes = (0,) + tuple(a + 1 for a in self.input_axes)
        return np.ascontiguousarray(np.transpose(x, axes))


# -- loading --------------------------------------------------------------------------------
def load_onnx(source):
    """A ``ModelProto`` from a ``.onnx`` path (its external data files checked, then read)
    or from a ``ModelProto`` (copied; its external data, if any, must be loaded already)."""
    onnx = _onnx()
    if isinstance(source, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(source)
        _load_external(model, None, "the in-memory model")
        return model
    path = Path(source)
    if not path.is_file():
        raise OnespikeError(f"model file {path} does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises its own DecodeError, or others on damage
        raise OnespikeError(f"{path} is not an ONNX model ({_first_line(e)}); export one "
                            f"with torch.onnx.export or tf2onnx") from None
    _load_external(model, path.parent, str(path))
    return model


def _first_line(error):
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:200]


def _stored_tensors(model):
    yield from model.graph.initializer
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t


def _load_external(model, folder, what):
    """Read the external data files of ``model``'s tensors from ``folder``, after checking
    that each one exists inside it (no absolute paths, no ``..``)."""
    from onnx.external_data_helper import (ExternalDataInfo, load_external_data_for_tensor,
                                           uses_external_data)

    for tensor in _stored_tensors(model):
        if not uses_external_data(tensor):
            continue
        location = ExternalDataInfo(tensor).location
        if folder is None:
            raise OnespikeError(f"{what} keeps tensor '{tensor.name}' in the external file "
                                f"'{location}'; pass the .onnx path, or load the model with "
                                f"onnx.load(path) first")
        file = (folder / location).resolve()
        if Path(location).is_absolute() or folder.resolve() not in file.parents:
            raise OnespikeError(f"{what}: tensor '{tensor.name}' points outside the model's "
                                f"folder ('{location}'); onespike reads external data only "
                                f"beside the .onnx file")
        if not file.is_file():
            raise OnespikeError(f"{what}: the external data file '{location}' of tensor "
                                f"'{tensor.name}' is missing; copy it beside the .onnx file "
                                f"or re-save the model with onnx.save(model, path, "
                                f"save_as_external_data=False)")
        try:
            load_external_data_for_tensor(tensor, str(folder))
        except Exception as e:
            raise OnespikeError(f"{what}: the external data of tensor '{tensor.name}' in "
                                f"'{location}' cannot be read ({_first_line(e)})") from None


# -- the graph, constants folded and shapes fixed ----------------------------------------
def _label(node):
    op = node.op_type if node.domain in _DEFAULT_DOMAINS else f"{node.domain}:{node.op_type}"
    return f"node '{node.name or node.output[0]}' ({op})"


def _attrs(node):
    from onnx import helper

    values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in values.items()}


def _fold(node, args):
    """The value of a constant-only ``node`` of :data:`_FOLDABLE`, or None."""
    from onnx import helper

    attrs, x = _attrs(node), args[0]
    if node.op_type == "Identity":
        return x
    if node.op_type == "Cast":
        return x.astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))
    if node.op_type == "Reshape":
        shape = [x.shape[i] if s == 0 and not attrs.get("allowzero") else s
                 for i, s in enumerate(args[1].tolist())]
        return x.reshape(shape)
    axes = args[1].tolist() if len(args) > 1 else None
    if node.op_type == "Squeeze":
        return np.squeeze(x, axis=None if axes is None else tuple(axes))
    return np.expand_dims(x, tuple(axes))


def _constants(model):
    from onnx import numpy_helper

    from onnx import helper

    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.domain not in _DEFAULT_DOMAINS:
            continue
        if node.op_type == "Constant":
            attr = node.attribute[0]
            value = helper.get_attribute_value(attr)
            values[node.output[0]] = numpy_helper.to_array(value) if attr.name == "value" \
                else np.asarray(value)
        elif node.op_type in _FOLDABLE and node.input[0] in values \
                and all(name in values for name in node.input if name):
            values[node.output[0]] = _fold(node, [values[n] for n in node.input if n])
    return values


def _check_opset(model):
    onnx = _onnx()
    versions = {o.domain: o.version for o in model.opset_import}
    version = versions.get("", versions.get("ai.onnx"))
    newest = onnx.defs.onnx_opset_version()
    if version is None or not FIRST_OPSET <= version <= newest:
        raise OnespikeError(f"the model uses ONNX opset {version}; onespike reads opsets "
                            f"{FIRST_OPSET} to {newest}: upgrade it with onnx.version_"
                            f"converter.convert_version(model, {FIRST_OPSET})")


def _check_operators(nodes):
    for node in nodes:
        label, op = _label(node), node.op_type
        if node.domain not in _DEFAULT_DOMAINS:
            raise OnespikeError(f"unsupported layer {label}: a custom operator; onespike "
                                f"reads QONNX Quant nodes and the standard operators "
                                f"{', '.join(SUPPORTED_ONNX)}")
        if op in _QUANTIZED:
            raise OnespikeError(f"unsupported layer {label}: an integer ONNX operator; "
                                f"onespike reads quantized models as QONNX (Brevitas' "
                                f"export_qonnx) or QCDQ (QuantizeLinear, Clip, "
                                f"DequantizeLinear), or the float model to quantize itself")
        if op in ("Softmax", "LogSoftmax"):
            raise OnespikeError(f"{label}: remove the softmax after the readout layer; the "
                                f"class is the argmax of the integer logits")
        if op not in _STEPS:
            raise OnespikeError(f"unsupported layer {label}; supported ONNX operators are "
                                f"{', '.join(SUPPORTED_ONNX)}")


class _OnnxGraph:
    """The model's one input and output, its constants, the nodes that compute from the
    input, who reads each value, and every value's shape (batch first)."""

    def __init__(self, model, example):
        onnx = _onnx()
        _check_opset(model)
        graph = model.graph
        self.constants = _constants(model)
        inputs = [i for i in graph.input if i.name not in self.constants]
        if len(inputs) != 1:
            raise OnespikeError(f"the model takes {len(inputs)} inputs; onespike converts "
                                f"models with exactly one input tensor")
        if len(graph.output) != 1:
            names = ", ".join(f"'{o.name}'" for o in graph.output)
            raise OnespikeError(f"the model has {len(graph.output)} outputs ({names}); "
                                f"onespike converts models with exactly one output, the logits")
        self.input, self.output = inputs[0].name, graph.output[0].name
        self.nodes = [n for n in graph.node if not all(o in self.constants for o in n.output)]
        _check_operators(self.nodes)
        self.users = {}
        for node in self.nodes:
            for name in dict.fromkeys(n for n in node.input if n and n not in self.constants):
                self.users.setdefault(name, []).append(node)
        self.batch, self.shapes = _infer_shapes(onnx, model, inputs[0], example)

    def array(self, value, owner):
        """``value`` (a constant) as a float64 copy; None stays None."""
        if value is None:
            return None
        array = np.array(value, dtype=np.float64, order="C")   # as torch holds them
        if not np.all(np.isfinite(array)):
            raise OnespikeError(f"{owner.name}: parameters contain NaN or infinite values; "
                                f"fix the trained model before converting")
        return array

    def constant(self, node, index, what):
        """Input ``index`` of ``node`` as a constant array (None when absent)."""
        if index >= len(node.input) or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.constants:
            raise OnespikeError(f"{_label(node)}: its {what} '{name}' is computed in the "
                                f"graph, not stored; onespike needs it constant")
        return self.constants[name]

    def shape(self, name, node):
        shape = self.shapes.get(name)
        if shape is None or any(d is None for d in shape):
            raise OnespikeError(f"{_label(node)}: the shape of '{name}' is not fixed by the "
                                f"input's shape ({shape}); export the model with static "
                                f"sizes (only the batch dimension may vary)")
        if len(shape) < 2 or shape[0] != self.batch:
            raise OnespikeError(f"{_label(node)}: its output {shape} does not keep the batch "
                                f"axis first; onespike maps per-sample layers only")
        return shape


def _dims(value_info):
    shape = value_info.type.tensor_type.shape
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in shape.dim)


def _fix_input(onnx, value_info, example):
    """Set the input's batch size (its own, or 1 when symbolic) and any symbolic size from
    the calibration sample; returns the batch size."""
    dims = value_info.type.tensor_type.shape.dim
    example = None if example is None else tuple(np.shape(example))
    full = _dims(value_info)
    if value_info.type.tensor_type.elem_type not in (onnx.TensorProto.FLOAT,
                                                     onnx.TensorProto.DOUBLE,
                                                     onnx.TensorProto.FLOAT16):
        raise OnespikeError(f"input '{value_info.name}' is not a float tensor; onespike maps "
                            f"models on float inputs")
    if len(full) < 2:
        raise OnespikeError(f"input '{value_info.name}' has shape {full}; onespike needs a "
                            f"leading batch dimension")
    if example is not None and (len(example) != len(full) - 1 or any(
            d is not None and d != e for d, e in zip(full[1:], example))):
        shown = ("batch",) + tuple(d if d is not None else "?" for d in full[1:])
        raise OnespikeError(f"calibration samples of shape {example} do not fit the model "
                            f"input '{value_info.name}' {shown}")
    for i, dim in enumerate(dims):
        if not dim.HasField("dim_value") or dim.dim_value < 1:
            size = 1 if i == 0 or example is None else example[i - 1]
            dim.Clear()
            dim.dim_value = size
    return dims[0].dim_value


def _infer_shapes(onnx, model, value_info, example):
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    del fixed.graph.value_info[:]               # stale sizes of another batch
    for output in fixed.graph.output:
        output.type.tensor_type.ClearField("shape")
    batch = _fix_input(onnx, next(i for i in fixed.graph.input if i.name == value_info.name),
                       example)
    try:
        fixed = onnx.shape_inference.infer_shapes(fixed, check_type=True, strict_mode=True,
                                                  data_prop=True)
    except Exception as e:  # InferenceError, ValidationError
        raise OnespikeError(f"ONNX shape inference fails on the model ({_first_line(e)}); "
                            f"check it with onnx.checker.check_model(model, full_check=True)"
                            ) from None
    graph = fixed.graph
    shapes = {v.name: _dims(v) for v in (*graph.input, *graph.value_info, *graph.output)}
    return batch, shapes


# -- the chain, as the PyTorch front end's operators ------------------------------------------
@dataclass(frozen=True)
class _Tensor:
    """The part of a ``torch.Tensor`` the PyTorch front end reads from ``node.meta["val"]``."""
    shape: tuple

    def dim(self):
        return len(self.shape)


class _Value:
    """An ONNX value dressed as the ``torch.fx`` node the PyTorch front end reads: the ATen
    operator it was translated to, its shape (batch first), the value it was computed from."""

    def __init__(self, name, target, shape, source=None):
        self.name, self.target = name, target
        self.meta = {"val": _Tensor(tuple(shape))}
        self.args = (source,)


def _pair_pads(node, pads, kernel, strides, in_sizes):
    """Per-axis padding of a ``Conv``/``MaxPool``/``AveragePool`` (equal on both sides)."""
    auto = _attrs(node).get("auto_pad", "NOTSET")
    n = len(kernel)
    if auto == "VALID":
        return [0] * n
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        total = [max((-(-size // s) - 1) * s + k - size, 0)
                 for size, k, s in zip(in_sizes, kernel, strides)]
        small = [t // 2 for t in total]
        large = [t - t // 2 for t in total]
        pads = small + large if auto == "SAME_UPPER" else large + small
    pads = list(pads or [0] * (2 * n))
    if pads[:n] != pads[n:]:
        raise OnespikeError(f"{_label(node)}: padding {pads} differs between the two sides "
                            f"of an axis; onespike pads both sides equally")
    return pads[:n]


class _ChainParser(_Parser):
    """The PyTorch front end's parser, walked along an ONNX graph (see the module notes)."""

    def __init__(self, graph: _OnnxGraph):
        self.graph = graph
        self.value = graph.input
        shape = graph.shapes[graph.input]
        self.input_axes = None
        if self._channels_last(len(shape)):
            perm = _TO_CHANNELS_FIRST[len(shape)]
            self.input_axes = tuple(p - 1 for p in perm[1:])
            shape = tuple(shape[p] for p in perm)
        self.current = _Value(f"input '{graph.input}'", "input", shape)
        self.input_shape = _shape(self.current)
        if len(self.input_shape) not in (1, 3):
            raise OnespikeError(f"input shape {shape[1:]} per sample: onespike takes vectors "
                                f"(features,), signals (channels, length) or images "
                                f"(channels, height, width)")
        self.layers, self.map_shape = [], self.input_shape
        self.pending_pool, self.pending_affine, self.pending_pad = (1, 1), None, None
        self.column_order = None        # the flatten of a map turned channels-last
        self.raw_layout = self.input_axes is not None   # channels-last until the Transpose

    def _channels_last(self, rank):
        """Whether a ``Transpose`` to channels-first follows the input before any layer."""
        name = self.graph.input
        while len(self.graph.users.get(name, ())) == 1:
            node = self.graph.users[name][0]
            if node.op_type == "Transpose":
                return tuple(_attrs(node).get("perm", ())) == _TO_CHANNELS_FIRST.get(rank)
            if node.op_type not in ("Identity", "Dropout", "Add", "Sub", "Mul", "Div"):
                return False
            name = node.output[0]
        return False

    def run(self):
        while self.value != self.graph.output:
            users = self.graph.users.get(self.value, [])
            if not users:
                raise OnespikeError(f"the layers from the input end at {self.current.name}, "
                                    f"which does not reach the output '{self.graph.output}'")
            if len(users) != 1:
                names = ", ".join(_label(u) for u in users)
                raise OnespikeError(
                    f"the output of {self.current.name} feeds {len(users)} operations "
                    f"({names}); only a plain chain of layers from the input to the output "
                    f"is supported (no residual or branching connections)")
            node = users[0]
            for name in node.output[1:]:
                if name and name in self.graph.users or name == self.graph.output:
                    raise OnespikeError(f"{_label(node)}: its second output '{name}' is used; "
                                        f"onespike maps single-output layers")
            if node.op_type not in ("Conv", "Dropout", "Identity"):
                self.check_no_pad(_label(node))
            getattr(self, _STEPS[node.op_type])(node)
            self.value = node.output[0]
        if self.pending_affine is not None:
            raise OnespikeError("batch norm after the readout layer is not supported")
        if self.column_order is not None:
            raise OnespikeError("the model ends with a transpose to channels-last; the "
                                "readout layer must be a Linear (or Conv) layer")
        return OnnxChain(self.input_shape, _finish(self.layers, self.pending_pool),
                         self.input_axes)

    def advance(self, node, target):
        """The parser's current node becomes ``node``'s output, read as ``target``."""
        self.current = _Value(_label(node), target,
                              self.graph.shape(node.output[0], node), self.current)
        return self.current

    def data_input(self, node):
        if node.input[0] != self.value:
            raise OnespikeError(f"{_label(node)}: the layer's input must be its first "
                                f"operand; constants first are not supported")

    # -- weighted layers ------------------------------------------------------------------
    def dense(self, node, weight, bias):
        if self.column_order is not None:       # flattened channels-last: (H, W, C) order
            c, h, w = self.column_order
            weight = weight.reshape(len(weight), h, w, c).transpose(0, 3, 1, 2) \
                .reshape(len(weight), -1)
            self.column_order = None
        self.affine(self.advance(node, "aten.linear.default"), _label(node),
                    {"weight": weight, "bias": bias})

    def gemm(self, node):
        self.data_input(node)
        attrs = _attrs(node)
        if attrs.get("transA"):
            raise OnespikeError(f"{_label(node)}: Gemm with transA=1 takes the batch on the "
                                f"second axis; onespike needs (batch, features) inputs")
        weight = self.graph.constant(node, 1, "weight")
        weight = weight if attrs.get("transB") else weight.T
        weight = np.asarray(weight, np.float64) * attrs.get("alpha", 1.0)
        bias = self.graph.constant(node, 2, "bias")
        if bias is not None:
            bias = np.broadcast_to(np.asarray(bias, np.float64) * attrs.get("beta", 1.0),
                                   (len(weight),))
        self.dense(node, weight, bias)

    def matmul(self, node):
        self.data_input(node)
        weight = self.graph.constant(node, 1, "weight")
        if weight.ndim != 2:
            raise OnespikeError(f"{_label(node)}: a MatMul with a {weight.ndim}-D weight is "
                                f"not a Linear layer")
        self.dense(node, np.asarray(weight.T, np.float64), None)

    def conv(self, node):
        self.data_input(node)
        attrs = _attrs(node)
        weight = self.graph.constant(node, 1, "weight")
        if weight.ndim not in (3, 4):
            raise OnespikeError(f"{_label(node)}: a {weight.ndim - 2}-D convolution; onespike "
                                f"maps 1-D and 2-D convolutions")
        kernel = list(weight.shape[2:])
        strides = attrs.get("strides", [1] * len(kernel))
        in_sizes = self.current.meta["val"].shape[2:]
        args = {"weight": weight, "bias": self.graph.constant(node, 2, "bias"),
                "stride": strides, "groups": attrs.get("group", 1),
                "dilation": attrs.get("dilations", [1] * len(kernel)),
                "padding": _pair_pads(node, attrs.get("pads"), kernel, strides, in_sizes)}
        target = "aten.conv1d.default" if weight.ndim == 3 else "aten.conv2d.default"
        self.affine(self.advance(node, target), _label(node), args)

    def batch_normalization(self, node):
        attrs = _attrs(node)
        # ONNX stores epsilon as float32: its shortest decimal is the value the model was
        # built with (1e-05, not 9.99999974738e-06), as the PyTorch front end reads it
        args = {"weight": self.graph.constant(node, 1, "scale"),
                "bias": self.graph.constant(node, 2, "bias"),
                "running_mean": self.graph.constant(node, 3, "mean"),
                "running_var": self.graph.constant(node, 4, "variance"),
                "eps": float(str(np.float32(attrs.get("epsilon", 1e-5)))),
                "training": attrs.get("training_mode", 0)}
        self.fold_affine(node, args)

    def fold_affine(self, node, args):
        """Hand a batch norm (or an affine map as one) to the parser, which folds it into the
        layer before or the next one; its output keeps the place of its input."""
        value = _Value(_label(node), self.current.target,
                       self.graph.shape(node.output[0], node), self.current)
        self.batch_norm(value, _label(node), args)
        self.current = value

    def elementwise(self, node):
        """``x + c``, ``x - c``, ``x · c``, ``x / c`` with a per-channel (or single) constant
        ``c``: a batch norm's affine map ``x·factor + shift``, folded as one."""
        first = int(node.op_type in ("Add", "Mul") and node.input[1] == self.value)
        if not first:
            self.data_input(node)
        c = np.asarray(self.graph.constant(node, 1 - first, "operand"), np.float64)
        shape = self.graph.shape(node.output[0], node)
        channels = shape[-1] if self.raw_layout else shape[1]
        vector = _channel_vector(node, c, shape, channels, self.raw_layout)
        ones, zeros = np.ones(channels), np.zeros(channels)
        factor, shift = {"Add": (ones, vector), "Sub": (ones, -vector),
                         "Mul": (vector, zeros), "Div": (1 / vector, zeros)}[node.op_type]
        args = {"weight": factor, "bias": shift, "running_mean": zeros, "running_var": ones,
                "eps": 0.0, "training": False}
        self.fold_affine(node, args)

    # -- activations and pooling ----------------------------------------------------------
    def relu_node(self, node):
        self.advance(node, "aten.relu.default")
        self.relu(_label(node), None)

    def clip(self, node):
        low, high = (self.graph.constant(node, i, what) for i, what in ((1, "min"), (2, "max")))
        # float32 constants read as the decimals they were written as (6.0, 0.1)
        args = {k: None if v is None else float(str(np.float32(np.asarray(v).reshape(-1)[0])))
                for k, v in (("min", low), ("max", high))}
        self.advance(node, "aten.clamp.default")
        self.relu(_label(node), _relu_cap("aten.clamp.default", args, _label(node)))

    def pad(self, node):
        """A zero ``Pad`` of the spatial axes, folded into the next convolution's padding."""
        attrs, rank = _attrs(node), self.current.meta["val"].dim()
        pads = self.graph.constant(node, 1, "pads")
        pads = list(attrs.get("pads", [])) if pads is None else pads.tolist()
        value = self.graph.constant(node, 2, "constant_value")
        axes = self.graph.constant(node, 3, "axes")
        axes = list(range(rank)) if axes is None else [a % rank for a in axes.tolist()]
        begin = dict(zip(axes, pads[:len(axes)]))
        end = dict(zip(axes, pads[len(axes):]))
        if any(begin.get(a, 0) or end.get(a, 0) for a in (0, 1)) or self.raw_layout:
            raise OnespikeError(f"{_label(node)}: pads the batch or channel axis; only a "
                                f"padding of the spatial axes folds into a convolution")
        self.advance(node, "aten.pad.default")
        torch_order = [p for a in reversed(range(2, rank))
                       for p in (begin.get(a, 0), end.get(a, 0))]     # last axis first
        self.pending_pad = _zero_padding({
            "pad": torch_order, "mode": attrs.get("mode", "constant"),
            "value": 0 if value is None else float(np.asarray(value).reshape(-1)[0])},
            _label(node))

    def window_args(self, node):
        attrs = _attrs(node)
        kernel = list(attrs["kernel_shape"])
        strides = attrs.get("strides", [1] * len(kernel))
        padding = _pair_pads(node, attrs.get("pads"), kernel, strides,
                             self.current.meta["val"].shape[2:])
        return {"kernel_size": kernel, "stride": strides, "padding": padding,
                "dilation": attrs.get("dilations", [1] * len(kernel)),
                "ceil_mode": attrs.get("ceil_mode", 0), "divisor_override": None}

    def max_pool_node(self, node):
        args = self.window_args(node)
        one_d = len(args["kernel_size"]) == 1
        self.max_pool(self.advance(node, "aten.max_pool2d.default"), _label(node), args,
                      one_d)

    def average_pool(self, node):
        args = self.window_args(node)
        target = "aten.avg_pool1d.default" if len(args["kernel_size"]) == 1 else \
            "aten.avg_pool2d.default"
        self.pool_by(_avg_pool_factor(self.advance(node, target), target, args, _label(node)))

    def global_pool(self, node):
        rank = self.current.meta["val"].dim()
        self.mean(node, list(range(2, rank)))

    def reduce_mean(self, node):
        axes = _attrs(node).get("axes")
        if len(node.input) > 1 and node.input[1]:
            axes = self.graph.constant(node, 1, "axes").tolist()
        self.mean(node, axes)

    def mean(self, node, axes):
        value = self.advance(node, "aten.mean.dim")
        self.pool_by(_avg_pool_factor(value, "aten.mean.dim", {"dim": axes}, _label(node)))

    def pool_by(self, factor):
        self.pending_pool = tuple(a * b for a, b in zip(self.pending_pool, factor))

    # -- shapes and layout ----------------------------------------------------------------
    def reshape(self, node):
        if node.op_type == "Flatten" and _attrs(node).get("axis", 1) != 1:
            raise OnespikeError(f"{_label(node)}: Flatten with axis "
                                f"{_attrs(node).get('axis')} mixes the batch axis in; only "
                                f"axis 1 is supported")
        before = _shape(self.current)
        shape = _shape(self.advance(node, "aten.reshape.default"))
        if len(shape) != 1 and shape != before:
            raise OnespikeError(f"{_label(node)}: reshape to {shape} is not a flatten; only "
                                f"Flatten is supported between layers")

    def transpose(self, node):
        rank = self.current.meta["val"].dim()
        perm = tuple(_attrs(node).get("perm", range(rank)[::-1]))
        if self.raw_layout and perm == _TO_CHANNELS_FIRST.get(rank):
            self.raw_layout = False
            self.current = _Value(_label(node), "input", self.graph.shape(node.output[0], node),
                                  self.current)
            return
        if self.layers and perm == _TO_CHANNELS_LAST.get(rank) and self.column_order is None:
            self.column_order = _pooled_shape(_ColumnMap(self.map_shape, self.pending_pool))
            self.advance(node, "aten.permute.default")
            return
        raise OnespikeError(f"{_label(node)}: transpose {list(perm)} is not supported; only "
                            f"a channels-last input turned channels-first (perm "
                            f"{list(_TO_CHANNELS_FIRST.get(rank, ()))}) and a last map turned "
                            f"channels-last before a flatten are")

    def identity(self, node):
        if node.op_type == "Dropout":
            training = self.graph.constant(node, 2, "training_mode")
            if training is not None and bool(training):
                raise OnespikeError(f"{_label(node)}: dropout is in training mode; export "
                                    f"the model in eval mode")
        self.current = _Value(_label(node), self.current.target,
                              self.current.meta["val"].shape, self.current)


@dataclass(frozen=True)
class _ColumnMap:
    """What :func:`_pooled_shape` reads: a map and the average pooling before the layer."""
    in_shape: tuple
    pool: tuple


def _channel_vector(node, c, shape, channels, channels_last):
    """The per-channel vector of constant ``c`` applied to a value of ``shape`` (batch
    first), or a refusal when it varies along another axis."""
    fits = np.broadcast_shapes(c.shape, shape) == tuple(shape) if c.ndim <= len(shape) \
        else False
    full = np.broadcast_to(c, shape) if fits else np.zeros(shape)
    per_channel = (np.moveaxis(full, -1, 1) if channels_last else full) \
        .reshape(shape[0], channels, -1)
    if not fits or not np.all(per_channel == per_channel[:1, :, :1]):
        raise OnespikeError(f"{_label(node)}: its constant varies along more than the "
                            f"channel axis; onespike folds per-channel constants only")
    return per_channel[0, :, 0].copy()


# operator → the parser's method (looked up on the instance, so subclasses refine it)
_STEPS = {"Gemm": "gemm", "MatMul": "matmul",
          "Conv": "conv", "BatchNormalization": "batch_normalization",
          "Add": "elementwise", "Sub": "elementwise",
          "Mul": "elementwise", "Div": "elementwise",
          "Relu": "relu_node", "Clip": "clip",
          "MaxPool": "max_pool_node", "AveragePool": "average_pool",
          "GlobalAveragePool": "global_pool",
          "ReduceMean": "reduce_mean", "Flatten": "reshape",
          "Reshape": "reshape", "Squeeze": "reshape",
          "Unsqueeze": "reshape", "Transpose": "transpose",
          "Dropout": "identity", "Identity": "identity", "Pad": "pad"}


def parse_onnx(model, example=None) -> OnnxChain:
    """The float layers of an ONNX ``model`` (from :func:`load_onnx`); ``example`` (one
    calibration sample, as the model sees it) fixes symbolic input sizes."""
    return _ChainParser(_OnnxGraph(model, example)).run()
