"""PyTorch front end: a model or a saved ``torch.export`` program → a chain of float layers.

Everything goes through ``torch.export`` so that a ``torch.nn.Module`` and a ``.pt2`` file
take the same path. The graph must be a single chain from the one user input to the one
output, made of the operators in :data:`SUPPORTED`; anything else is refused with the name
of the module it came from. Batch normalisation is folded into the layer before it here,
so later stages see only affine layers, ReLUs and pooling.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onespike.errors import OnespikeError

__all__ = ["FloatLayer", "parse_module", "parse_exported", "load_exported", "SUPPORTED"]

_IDENTITY = {"aten.dropout.default", "aten.clone.default", "aten.alias.default",
             "aten.detach.default", "aten.contiguous.default", "aten.feature_dropout.default",
             "aten.dropout_.default"}
_FLATTEN = {"aten.flatten.using_ints", "aten.view.default", "aten.reshape.default",
            "aten._unsafe_view.default"}
_AFFINE = {"aten.linear.default", "aten.conv2d.default", "aten.conv1d.default",
           "aten.conv2d.padding", "aten.conv1d.padding"}     # .padding: padding="same"
_MAX_POOL = {"aten.max_pool2d.default", "aten.max_pool1d.default"}
_AVG_POOL = {"aten.avg_pool2d.default", "aten.avg_pool1d.default"}
_ADAPTIVE_POOL = {"aten.adaptive_avg_pool2d.default", "aten._adaptive_avg_pool2d.default",
                  "aten.adaptive_avg_pool1d.default"}
_ADAPTIVE_MAX_POOL = {"aten.adaptive_max_pool2d.default", "aten.adaptive_max_pool1d.default"}
_PAD = {"aten.pad.default", "aten.constant_pad_nd.default"}
_RELU = {"aten.relu.default", "aten.relu_.default"}
# spellings of a ReLU, or of a ReLU that saturates at some t (ReLU6, Hardtanh(0, t),
# clamp(0, t)): the quantizer's top level is then placed at t
_CLAMPS = {"aten.clamp.default", "aten.clamp_.default", "aten.clamp_min.default",
           "aten.clamp_min_.default", "aten.hardtanh.default", "aten.hardtanh_.default",
           "aten.threshold.default", "aten.threshold_.default"}
_MEAN = {"aten.mean.dim"}
_SHAPE_QUERIES = {"aten.sym_size.int", "aten.sym_size.default", "aten.size.default",
                  "aten.sym_numel.default"}
_BATCH_NORM = {"aten.batch_norm.default",
               "aten._native_batch_norm_legit_no_training.default"}
SUPPORTED = ("Linear", "Conv1d/2d", "BatchNorm1d/2d", "ReLU (also clamp(min=0), "
             "threshold(0, 0), ReLU6, Hardtanh(0, t), clamp(0, t))", "MaxPool1d/2d",
             "AdaptiveMaxPool1d/2d (integer factor)", "ZeroPad1d/2d before a convolution",
             "AvgPool1d/2d", "AdaptiveAvgPool1d/2d (integer factor), mean over the length or "
             "(H, W)", "Flatten", "Dropout", "Identity")


@dataclass
class FloatLayer:
    """One layer of the float network, in numpy float64.

    ``kind`` is ``"dense"``, ``"conv"``, ``"maxpool"`` or ``"recurrent"`` (a ReLU recurrence
    ``h_t = relu(weight·x_t + recurrent·h_{t−1} + bias)``, ``h_{−1} = 0``, over the steps of
    a sequence; :mod:`onespike.mapper.sequence`). Affine layers carry ``weight``,
    ``bias`` (batch norm folded in), ``relu`` (followed by a ReLU) and ``pool`` (an average
    pooling of this ``(height, width)`` factor precedes them). ``in_shape`` is the shape of
    the map that feeds the layer, before that pooling. A 1-D map ``(C, L)`` is the image
    ``(C, 1, L)`` here, its kernels ``(1, k)``; geometry values are ``(height, width)``.
    """
    kind: str
    name: str
    in_shape: tuple
    weight: np.ndarray = None
    bias: np.ndarray = None
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    kernel: tuple = (1, 1)
    pool: tuple = (1, 1)
    relu: bool = False
    cap: float = None         # a saturating ReLU's top (ReLU6: 6.0), or None
    recurrent: np.ndarray = None   # kind "recurrent": the state weights W_h (outputs, outputs)


def _module_name(node) -> str:
    """The submodule that made ``node`` (``'fc1' (Linear)``), or for an operation written
    in a ``forward`` itself, that operation (``torch.relu 'relu_1' in Net.forward``)."""
    stack = node.meta.get("nn_module_stack") or {}
    if node.op == "placeholder":
        return f"the input '{node.name}'"
    if stack:
        path, kind = list(stack.values())[-1]
        kind = getattr(kind, "__name__", str(kind).rsplit(".", 1)[-1])
        if path:
            return f"'{path}' ({kind})"
        operation = str(node.target).removeprefix("aten.").split(".")[0]
        return f"torch.{operation} '{node.name}' in {kind}.forward"
    return f"'{node.name}'"


def _op_schema(target):
    """The ATen operator's ``FunctionSchema``, or None for a plain Python callable.

    The one place that reads torch's private ``OpOverload._schema`` (pinned torch 2.13.0;
    ``torch.fx.operator_schemas`` offers no defaults-filling public form)."""
    return getattr(target, "_schema", None)


def _args(node) -> dict:
    schema = _op_schema(node.target)
    values = {}
    for i, arg in enumerate(schema.arguments):
        if i < len(node.args):
            values[arg.name] = node.args[i]
        elif arg.name in node.kwargs:
            values[arg.name] = node.kwargs[arg.name]
        else:
            values[arg.name] = arg.default_value if arg.has_default_value() else None
    return values


def _geometry(value, default, one_d):
    """``(height, width)`` of a kernel, stride, padding or dilation argument; a 1-D
    operator's single value is the width (its height is ``1`` for sizes, ``0`` for padding)."""
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        value = default
    values = [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]
    if one_d:
        return (0 if default == 0 else 1, values[0])
    return (values[0], values[-1])


def _shape(node):
    """Per-sample shape of a node's value; a 1-D map ``(C, L)`` as the image ``(C, 1, L)``.
    Of an operator with several results (adaptive max pooling's values and indices), the
    first."""
    value = node.meta["val"]
    value = value[0] if isinstance(value, (list, tuple)) else value
    shape = tuple(int(d) for d in value.shape[1:])
    return (shape[0], 1, shape[1]) if len(shape) == 2 else shape


class _Graph:
    """The exported graph with its tensors resolved to float64 numpy arrays."""

    def __init__(self, program):
        self.program = program
        sig = program.graph_signature
        self.tensors = {}
        for name, key in list(sig.inputs_to_parameters.items()) + \
                list(sig.inputs_to_buffers.items()):
            self.tensors[name] = program.state_dict[key] if key in program.state_dict \
                else program.constants[key]
        for name, key in sig.inputs_to_lifted_tensor_constants.items():
            self.tensors[name] = program.constants[key]
        self.user_inputs = list(sig.user_inputs)

    def user_input(self):
        """The node of the model's one input tensor (a model with more is refused)."""
        if len(self.user_inputs) != 1:
            raise OnespikeError(f"the model takes {len(self.user_inputs)} inputs; "
                                f"onespike converts models with exactly one input tensor")
        return next(n for n in self.program.graph.nodes if n.name == self.user_inputs[0])

    def array(self, arg, owner):
        if arg is None:
            return None
        tensor = self.tensors.get(getattr(arg, "name", None))
        if tensor is None:
            raise OnespikeError(f"{_module_name(owner)}: its parameters are computed in the "
                                f"graph, not stored; only plain parameters are supported")
        array = tensor.detach().to("cpu").double().numpy().copy()
        if not np.all(np.isfinite(array)):
            raise OnespikeError(f"{_module_name(owner)}: parameters contain NaN or infinite "
                                f"values; fix the trained model before converting")
        return array


def parse_exported(program) -> tuple:
    """(input shape, [FloatLayer]) of an ``ExportedProgram`` in inference mode; a sequence
    model's input shape is ``(steps, *frame)`` and its layers include recurrent ones."""
    from onespike.mapper.sequence import is_sequence_graph, parse_sequence

    if is_sequence_graph(program):
        return parse_sequence(program)
    return _Parser(program).run()


class _Parser:
    """Follows the chain from the one user input to the output, one operator at a time."""

    def __init__(self, program):
        self.graph = _Graph(program)
        self.current = self.graph.user_input()
        self.input_shape = _shape(self.current)
        if len(self.input_shape) not in (1, 3):
            raise OnespikeError(
                f"input shape {tuple(self.current.meta['val'].shape[1:])} per sample: "
                f"onespike takes vectors (features,), signals (channels, length) or images "
                f"(channels, height, width)")
        self.layers = []
        self.map_shape = self.input_shape   # the spike map the next layer reads
        self.pending_pool = (1, 1)
        self.pending_affine = None          # (factor, shift) per channel, from a BatchNorm
        self.pending_pad = None             # (height, width) of a zero padding, for a conv

    def run(self):
        while True:
            users = [u for u in self.current.users if str(u.target) not in _SHAPE_QUERIES
                     and not _unused_extra_result(u)]
            if len(users) != 1:
                names = ", ".join(_module_name(u) for u in users)
                raise OnespikeError(
                    f"the output of {_module_name(self.current)} feeds {len(users)} "
                    f"operations ({names}); only a plain chain of layers is supported (no "
                    f"residual or branching connections)")
            node = users[0]
            if node.op == "output":
                break
            self.step(node)
            self.current = node
        if self.pending_affine is not None:
            raise OnespikeError("batch norm after the readout layer is not supported")
        return self.input_shape, _finish(self.layers, self.pending_pool)

    def step(self, node):
        target, name = str(node.target), _module_name(node)
        if node.op != "call_function":
            raise OnespikeError(f"{name}: unsupported graph node {node.op}")
        if target == "<built-in function getitem>" and node.args[1] == 0:
            return
        args = _args(node) if _op_schema(node.target) is not None else {}
        if target not in _AFFINE | _IDENTITY:
            self.check_no_pad(name)
        if target in _PAD:
            self.pending_pad = _zero_padding(args, name)
        elif target in _AFFINE:
            self.affine(node, name, args)
        elif target in _BATCH_NORM:
            self.batch_norm(node, name, args)
        elif target in _RELU or target in _CLAMPS:
            self.relu(name, _relu_cap(target, args, name))
        elif target in _MAX_POOL:
            self.max_pool(node, name, args, one_d=target.endswith("1d.default"))
        elif target in _ADAPTIVE_MAX_POOL:
            factor = _integer_factor(_shape(node.args[0]), _shape(node), name)
            self.max_pool(node, name, {"ceil_mode": False, "dilation": 1, "padding": 0,
                                       "kernel_size": factor, "stride": factor}, one_d=False)
        elif target in _AVG_POOL or target in _ADAPTIVE_POOL or target in _MEAN:
            factor = _avg_pool_factor(node, target, args, name)
            self.pending_pool = tuple(a * b for a, b in zip(self.pending_pool, factor))
        elif target in _FLATTEN:
            shape = _shape(node)
            if len(shape) != 1 and shape != _shape(self.current):
                raise OnespikeError(f"{name}: reshape to {shape} is not a flatten; only "
                                    f"Flatten is supported between layers")
        elif target in _IDENTITY:
            if target.startswith("aten.dropout") and args.get("train"):
                raise OnespikeError(f"{name}: dropout is in training mode; call model.eval()")
        elif "softmax" in target:
            raise OnespikeError(f"{name}: remove the softmax after the readout layer; the "
                                f"class is the argmax of the integer logits")
        else:
            raise OnespikeError(f"unsupported layer {name}: operator {target}; supported "
                                f"layers are {', '.join(SUPPORTED)}")

    def check_no_pad(self, name):
        """Refuse an operation between a zero padding and the convolution it folds into."""
        if self.pending_pad is not None:
            raise OnespikeError(f"{name} follows a zero padding; a padding folds only into "
                                f"the padding of a convolution right after it")

    def affine(self, node, name, args):
        layers = self.layers
        if layers and layers[-1].kind != "maxpool" and not layers[-1].relu:
            raise OnespikeError(f"{name} follows {layers[-1].name} without a ReLU in "
                                f"between; every hidden layer needs a ReLU")
        weight = self.graph.array(args["weight"], node)
        bias = self.graph.array(args["bias"], node)
        if bias is None:
            bias = np.zeros(weight.shape[0])
        if weight.ndim == 2 and len(_shape(node.args[0])) != 1:
            raise OnespikeError(
                f"{name}: a Linear layer applied to a {_shape(node.args[0])} map acts on its "
                f"last axis only; flatten the map first (nn.Flatten or torch.flatten(x, 1))")
        one_d = weight.ndim == 3
        if one_d:
            weight = weight[:, :, None, :]          # Conv1d: a kernel of height 1
        layer = FloatLayer("dense" if weight.ndim == 2 else "conv", name, self.map_shape,
                           weight, bias, pool=self.pending_pool)
        if layer.kind == "conv":
            _conv_geometry(layer, args, weight, name, one_d, self.pending_pad or (0, 0))
        elif self.pending_pad is not None:
            raise OnespikeError(f"{name}: a zero padding before a Linear layer does not fold; "
                                f"only a convolution's padding takes it")
        self.pending_pad = None
        if self.pending_affine is not None:
            _fold_input_affine(layer, *self.pending_affine)
            self.pending_affine = None
        layers.append(layer)
        self.pending_pool = (1, 1)
        self.map_shape = _shape(node)

    def batch_norm(self, node, name, args):
        if args.get("training"):
            raise OnespikeError(f"{name}: batch norm is in training mode; call "
                                f"model.eval() before exporting")
        factor, shift = _batch_norm_affine(self.graph, node, args, name)
        if str(self.current.target) in _AFFINE:        # fold into the layer before
            last = self.layers[-1]
            last.weight = last.weight * factor.reshape((-1,) + (1,) * (last.weight.ndim - 1))
            last.bias = _channel_bias(last.bias) * _channel_bias(factor, last.bias) \
                + _channel_bias(shift, last.bias)
        elif self.pending_affine is None:             # after a ReLU, a pooling, at the input
            self.pending_affine = (factor, shift)      # folded into the next layer
        else:
            f, g = self.pending_affine
            self.pending_affine = (f * factor, g * factor + shift)

    def relu(self, name, cap):
        affine = [l for l in self.layers if l.kind != "maxpool"]
        if not affine or self.pending_affine is not None:
            raise OnespikeError(f"{name}: a ReLU must follow a Linear/Conv2d layer (before "
                                f"the first one, or after a batch norm that is not folded "
                                f"into one, inputs would be clipped unseen)")
        if self.pending_pool != (1, 1):
            raise OnespikeError(f"{name}: average pooling before a ReLU does not commute "
                                f"with it; put the pooling after the ReLU")
        if affine[-1].relu:
            raise OnespikeError(f"{name}: two activations in a row after {affine[-1].name}")
        affine[-1].relu, affine[-1].cap = True, cap

    def max_pool(self, node, name, args, one_d):
        if self.pending_pool != (1, 1):
            raise OnespikeError(f"{name}: max pooling after average pooling is not "
                                f"supported")
        if self.pending_affine is not None:
            raise OnespikeError(f"{name}: max pooling after a batch norm that follows a ReLU "
                                f"does not commute with it; put the batch norm after the "
                                f"pooling or right after the Linear/Conv2d layer")
        if args["ceil_mode"] or _geometry(args["dilation"], 1, one_d) != (1, 1):
            raise OnespikeError(f"{name}: max pooling with ceil_mode or dilation is not "
                                f"supported")
        kernel = _geometry(args["kernel_size"], 1, one_d)
        stride = _geometry(args["stride"], None, one_d) if args["stride"] else kernel
        padding = _geometry(args["padding"], 0, one_d)
        if any(p > k // 2 for p, k in zip(padding, kernel)):
            raise OnespikeError(f"{name}: max pooling padding {padding} exceeds half the "
                                f"kernel {kernel}")
        self.layers.append(FloatLayer("maxpool", name, self.map_shape, kernel=kernel,
                                      stride=stride, padding=padding))
        self.map_shape = _shape(node)


def _zero_padding(args, name):
    """``(height, width)`` of a symmetric zero padding (``nn.ZeroPad2d``, ``F.pad``), to
    fold into the next convolution's padding."""
    pad, value = [int(p) for p in args["pad"]], args.get("value") or 0
    if args.get("mode", "constant") != "constant":
        raise OnespikeError(f"{name}: {args['mode']} padding; only zero padding folds into "
                            f"a convolution")
    if value != 0:
        raise OnespikeError(f"{name}: padding with {value}; only zero padding folds into a "
                            f"convolution")
    if len(pad) not in (2, 4) or pad[0] != pad[1] or pad[2:3] != pad[3:4] or min(pad) < 0:
        raise OnespikeError(f"{name}: padding {pad} (left, right[, top, bottom]) is not the "
                            f"same on both sides of each spatial axis, so it cannot fold "
                            f"into a convolution's padding")
    return (pad[2] if len(pad) == 4 else 0, pad[0])


def _conv_geometry(layer, args, weight, name, one_d, extra_padding=(0, 0)):
    if args["groups"] != 1 or _geometry(args["dilation"], 1, one_d) != (1, 1):
        raise OnespikeError(f"{name}: grouped or dilated convolution is not supported")
    padding = args["padding"]
    if isinstance(padding, str):               # padding="same" / "valid"
        if padding == "valid":
            padding = 0
        elif all(k % 2 for k in weight.shape[2:]):
            padding = [k // 2 for k in weight.shape[2 + one_d:]]
        else:
            raise OnespikeError(f"{name}: padding='same' with an even kernel pads unevenly; "
                                f"use explicit padding")
    layer.stride = _geometry(args["stride"], 1, one_d)
    layer.padding = tuple(p + e for p, e in zip(_geometry(padding, 0, one_d), extra_padding))
    layer.kernel = tuple(weight.shape[2:])
    if any(p >= k for p, k in zip(layer.padding, layer.kernel)):
        raise OnespikeError(f"{name}: padding {layer.padding} is not smaller than the kernel "
                            f"{layer.kernel}; onespike supports padding below the kernel size")


def _channel_bias(values, like=None):
    """Per-channel ``values`` shaped to combine with a bias like ``like`` (1-D or (C,h,w))."""
    values = np.asarray(values, dtype=np.float64)
    if like is not None and np.ndim(like) == 3:
        return values.reshape(-1, 1, 1)
    return values


def _batch_norm_affine(graph, node, args, name):
    """``(factor, shift)`` per channel: batch norm is ``x·factor + shift``."""
    gamma = graph.array(args["weight"], node)
    beta = graph.array(args["bias"], node)
    mean = graph.array(args["running_mean"], node)
    var = graph.array(args["running_var"], node)
    if mean is None or var is None:
        raise OnespikeError(f"{name}: batch norm without running statistics")
    gamma = np.ones_like(mean) if gamma is None else gamma
    beta = np.zeros_like(mean) if beta is None else beta
    factor = gamma / np.sqrt(var + args["eps"])
    return factor, beta - mean * factor


def _pooled_shape(layer):
    if len(layer.in_shape) == 1:
        return layer.in_shape
    c, h, w = layer.in_shape
    return (c, h // layer.pool[0], w // layer.pool[1])


def _fold_input_affine(layer, factor, shift):
    """Fold a per-channel affine ``x·factor + shift`` of the layer's (pooled) input into its
    weights and bias (position-dependent where a convolution's zero padding meets it)."""
    import torch
    import torch.nn.functional as F

    shape = _pooled_shape(layer)
    per_feature = np.broadcast_to(np.asarray(factor, dtype=np.float64).reshape(
        (-1,) + (1,) * (len(shape) - 1)), shape)
    shift_map = np.broadcast_to(np.asarray(shift, dtype=np.float64).reshape(
        (-1,) + (1,) * (len(shape) - 1)), shape)
    w = torch.as_tensor(layer.weight)
    g = torch.as_tensor(np.array(shift_map))[None]          # a writable copy
    if layer.kind == "dense":
        moved = F.linear(g.reshape(1, -1), w)[0].numpy()
        layer.weight = layer.weight * per_feature.reshape(-1)[None, :]
        layer.bias = layer.bias + moved
        return
    moved = F.conv2d(g, w, stride=layer.stride, padding=layer.padding)[0].numpy()
    layer.weight = layer.weight * per_feature[:, 0, 0][None, :, None, None]
    bias = _channel_bias(layer.bias, moved) + moved
    layer.bias = bias[:, 0, 0].copy() if np.all(bias == bias[:, :1, :1]) else bias


def _relu_cap(target, args, name):
    """None for a plain ReLU spelling, ``t`` for one that saturates at ``t``; refuses
    clamps that are not ReLUs."""
    if target in _RELU:
        return None
    if target.startswith("aten.threshold"):
        if args["threshold"] != 0 or args["value"] != 0:
            raise OnespikeError(f"{name}: threshold({args['threshold']}, {args['value']}) "
                                f"is not a ReLU; only threshold(0, 0) is")
        return None
    if target.startswith("aten.hardtanh"):
        low, high = args["min_val"], args["max_val"]
    elif target.startswith("aten.clamp_min"):
        low, high = args["min"], None
    else:
        low, high = args.get("min"), args.get("max")
    if low is None or float(low) != 0 or (high is not None and float(high) <= 0):
        raise OnespikeError(f"{name}: a clamp to [{low}, {high}] is not a ReLU; onespike "
                            f"maps clamps with min 0 (and any positive max)")
    return None if high is None else float(high)


def _avg_pool_factor(node, target, args, name):
    """``(height, width)`` factor of a non-overlapping average pooling (sum pooling in the
    integer network)."""
    in_shape = _shape(node.args[0])
    rank = node.args[0].meta["val"].dim()      # 3 for a signal batch, 4 for images
    one_d = rank == 3
    if target in _MEAN:
        dims = sorted(d % rank for d in args["dim"] or ())
        if len(in_shape) != 3 or dims != list(range(2, rank)):
            raise OnespikeError(f"{name}: only a mean over the length of a signal or the two "
                                f"spatial axes of an image (global average pooling) is "
                                f"supported, not over {args['dim']} of {in_shape}")
        return in_shape[1:]
    if target in _AVG_POOL:
        kernel = _geometry(args["kernel_size"], 1, one_d)
        stride = _geometry(args["stride"], None, one_d) if args["stride"] else kernel
        if stride != kernel or _geometry(args["padding"], 0, one_d) != (0, 0) \
                or args["ceil_mode"] or args.get("divisor_override") is not None:
            raise OnespikeError(f"{name}: only non-overlapping average pooling (stride = "
                                f"kernel, no padding, no ceil_mode) is supported")
        return kernel
    return _integer_factor(in_shape, _shape(node), name)


def _unused_extra_result(node) -> bool:
    """Whether ``node`` takes a result other than the first of an operator with several
    (adaptive max pooling's indices) and nothing reads it."""
    return str(node.target) == "<built-in function getitem>" and node.args[1] != 0 \
        and not node.users


def _integer_factor(in_shape, out, name):
    """``(height, width)`` factor of an adaptive pooling from ``in_shape`` to ``out``."""
    factor = tuple(i // o for i, o in zip(in_shape[1:], out[1:]))
    if any(o * f != i for i, o, f in zip(in_shape[1:], out[1:], factor)):
        raise OnespikeError(f"{name}: adaptive pooling {in_shape[1:]} → {out[1:]} is not an "
                            f"integer factor on each axis")
    return factor


def _conv_as_dense(layer):
    """A convolution readout as the Linear layer it is on the flattened map: the same
    numbers, one row per output (channel, y, x) in C order (exact)."""
    import torch
    import torch.nn.functional as F

    shape = _pooled_shape(layer)
    basis = torch.eye(int(np.prod(shape)), dtype=torch.float64).reshape((-1,) + shape)
    out = F.conv2d(basis, torch.as_tensor(layer.weight), stride=layer.stride,
                   padding=layer.padding)
    weight = out.reshape(len(basis), -1).T.numpy().copy()
    per_position = out.shape[2] * out.shape[3]
    bias = np.asarray(layer.bias, dtype=np.float64)
    bias = np.repeat(bias, per_position) if bias.ndim == 1 else bias.reshape(-1)
    return FloatLayer("dense", layer.name, layer.in_shape, weight, bias, pool=layer.pool)


def _finish(layers, pending_pool):
    if not layers or layers[-1].kind == "maxpool":
        raise OnespikeError("the model must end with a Linear or Conv2d readout layer")
    if layers[-1].kind == "conv" and not layers[-1].relu:
        layers[-1] = _conv_as_dense(layers[-1])
    if layers[-1].relu:
        raise OnespikeError(f"the model ends with a ReLU after {layers[-1].name}; the readout "
                            f"layer must be a Linear (or Conv2d) without activation")
    if pending_pool != (1, 1):
        raise OnespikeError("average pooling after the readout layer is not supported")
    for layer in layers[:-1]:
        if layer.kind != "maxpool" and not layer.relu:
            raise OnespikeError(f"hidden layer {layer.name} has no ReLU")
    return layers


@contextmanager
def _weights_only():
    # torch.export.load falls back to a full unpickle when the safe loader fails;
    # forcing weights-only makes that fallback safe as well.
    saved = {k: os.environ.pop(k, None) for k in ("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD",)}
    old = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = old
        for k, v in saved.items():
            if v is not None:
                os.environ[k] = v


def load_exported(path):
    """Load a ``.pt2`` written by ``torch.export.save``, never unpickling arbitrary objects."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise OnespikeError(f"model file {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise OnespikeError(f"{path} is not a torch.export program (.pt2 zip archive); save "
                            f"one with torch.export.save(torch.export.export(model.eval(), "
                            f"(example,)), '{path.name}')")
    try:
        with _weights_only():
            return torch.export.load(str(path))
    except Exception as e:  # torch raises many types for a damaged archive
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OnespikeError(f"{path} could not be loaded as a torch.export program "
                            f"({first[:200]}); re-export it with torch.export.save") from None


def parse_module(model, example) -> tuple:
    """Export ``model`` (in eval mode) on ``example`` (one sample) and parse the graph."""
    import torch

    was_training = model.training
    example = torch.as_tensor(np.asarray(example, dtype=np.float32)[None])
    try:
        with warnings.catch_warnings():    # nn.RNN re-assigns its flat weights while traced
            warnings.filterwarnings("ignore", "The tensor attributes .* were assigned during "
                                    "export", UserWarning)
            program = torch.export.export(model.eval(), (example,))
    except Exception as e:
        raise OnespikeError(f"calibration samples of shape {tuple(example.shape[1:])} do not "
                            f"fit the model (torch.export: {str(e).splitlines()[0][:160]})") \
            from None
    finally:
        model.train(was_training)      # the caller's module is left as it was
    return parse_exported(program)
