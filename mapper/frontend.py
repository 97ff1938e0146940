"""PyTorch front end: a model or a saved ``torch.export`` program → a chain of float layers.

Everything goes through ``torch.export`` so that a ``torch.nn.Module`` and a ``.pt2`` file
take the same path. The graph must be a single chain from the one user input to the one
output, made of the operators in :data:`SUPPORTED`; anything else is refused with the name
of the module it came from. Batch normalisation is folded into the layer before it here,
so later stages see only affine layers, ReLUs and pooling.
"""

from __future__ import annotations

import os
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
_AFFINE = {"aten.linear.default", "aten.conv2d.default"}
_RELU = {"aten.relu.default", "aten.relu_.default"}
_BATCH_NORM = {"aten.batch_norm.default",
               "aten._native_batch_norm_legit_no_training.default"}
SUPPORTED = ("Linear", "Conv2d", "BatchNorm1d/2d", "ReLU", "MaxPool2d", "AvgPool2d",
             "AdaptiveAvgPool2d (integer factor)", "Flatten", "Dropout", "Identity")


@dataclass
class FloatLayer:
    """One layer of the float network, in numpy float64.

    ``kind`` is ``"dense"``, ``"conv"`` or ``"maxpool"``. Affine layers carry ``weight``,
    ``bias`` (batch norm folded in), ``relu`` (followed by a ReLU) and ``pool`` (an average
    pooling of this factor precedes them). ``in_shape`` is the shape of the map that feeds
    the layer, before that pooling.
    """
    kind: str
    name: str
    in_shape: tuple
    weight: np.ndarray = None
    bias: np.ndarray = None
    stride: int = 1
    padding: int = 0
    kernel: int = 1
    pool: int = 1
    relu: bool = False


def _module_name(node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        path, kind = list(stack.values())[-1]
        kind = getattr(kind, "__name__", str(kind).rsplit(".", 1)[-1])
        return f"'{path}' ({kind})" if path else f"({kind})"
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


def _square(value, what, name, default=None):
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        value = default
    if isinstance(value, int):
        return value
    value = list(value)
    if len(value) == 1:
        return int(value[0])
    if len(value) != 2 or value[0] != value[1]:
        raise OnespikeError(f"{name}: {what} {value} is not square; only equal height and "
                            f"width are supported")
    return int(value[0])


def _shape(node):
    return tuple(int(d) for d in node.meta["val"].shape[1:])


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
    """(input shape, [FloatLayer]) of an ``ExportedProgram`` in inference mode."""
    graph = _Graph(program)
    if len(graph.user_inputs) != 1:
        raise OnespikeError(f"the model takes {len(graph.user_inputs)} inputs; onespike "
                            f"converts models with exactly one input tensor")
    nodes = {n.name: n for n in program.graph.nodes}
    current = nodes[graph.user_inputs[0]]
    input_shape = _shape(current)
    if len(input_shape) not in (1, 3):
        raise OnespikeError(f"input shape {input_shape} per sample: onespike takes vectors "
                            f"(features,) or images (channels, height, width)")
    layers = []
    map_shape = input_shape  # shape of the spike map the next layer reads
    pending_pool = 1
    while True:
        users = [u for u in current.users]
        if len(users) != 1:
            names = ", ".join(_module_name(u) for u in users)
            raise OnespikeError(f"the output of {_module_name(current)} feeds {len(users)} "
                                f"operations ({names}); only a plain chain of layers is "
                                f"supported (no residual or branching connections)")
        node = users[0]
        if node.op == "output":
            break
        target = str(node.target)
        name = _module_name(node)
        if node.op != "call_function":
            raise OnespikeError(f"{name}: unsupported graph node {node.op}")
        if target == "<built-in function getitem>" and node.args[1] == 0:
            current = node
            continue
        args = _args(node) if _op_schema(node.target) is not None else {}
        if target in _AFFINE:
            if layers and layers[-1].kind != "maxpool" and not layers[-1].relu:
                raise OnespikeError(f"{name} follows {layers[-1].name} without a ReLU in "
                                    f"between; every hidden layer needs a ReLU")
            weight = graph.array(args["weight"], node)
            bias = graph.array(args["bias"], node)
            if bias is None:
                bias = np.zeros(weight.shape[0])
            layer = FloatLayer("dense" if weight.ndim == 2 else "conv", name, map_shape,
                               weight, bias, pool=pending_pool)
            if layer.kind == "conv":
                if args["groups"] != 1 or _square(args["dilation"], "dilation", name) != 1:
                    raise OnespikeError(f"{name}: grouped or dilated convolution is not "
                                        f"supported")
                layer.stride = _square(args["stride"], "stride", name, 1)
                layer.padding = _square(args["padding"], "padding", name, 0)
                if weight.shape[2] != weight.shape[3]:
                    raise OnespikeError(f"{name}: kernel {weight.shape[2:]} is not square")
            layers.append(layer)
            pending_pool = 1
            map_shape = _shape(node)
        elif target in _BATCH_NORM:
            if str(current.target) not in _AFFINE:
                raise OnespikeError(f"{name}: batch norm must directly follow a Linear or "
                                    f"Conv2d layer (it is folded into it)")
            if args.get("training"):
                raise OnespikeError(f"{name}: batch norm is in training mode; call "
                                    f"model.eval() before exporting")
            gamma = graph.array(args["weight"], node)
            beta = graph.array(args["bias"], node)
            mean = graph.array(args["running_mean"], node)
            var = graph.array(args["running_var"], node)
            if mean is None or var is None:
                raise OnespikeError(f"{name}: batch norm without running statistics")
            gamma = np.ones_like(mean) if gamma is None else gamma
            beta = np.zeros_like(mean) if beta is None else beta
            factor = gamma / np.sqrt(var + args["eps"])
            last = layers[-1]
            last.weight = last.weight * factor.reshape((-1,) + (1,) * (last.weight.ndim - 1))
            last.bias = (last.bias - mean) * factor + beta
        elif target in _RELU:
            affine = [l for l in layers if l.kind != "maxpool"]
            if not affine:
                raise OnespikeError(f"{name}: a ReLU before the first Linear/Conv2d layer "
                                    f"is not supported (inputs are encoded as they are)")
            if pending_pool > 1:
                raise OnespikeError(f"{name}: average pooling before a ReLU does not commute "
                                    f"with it; put the pooling after the ReLU")
            affine[-1].relu = True
        elif target == "aten.max_pool2d.default":
            if pending_pool > 1:
                raise OnespikeError(f"{name}: max pooling after average pooling is not "
                                    f"supported")
            if args["ceil_mode"] or _square(args["dilation"], "dilation", name) != 1:
                raise OnespikeError(f"{name}: max pooling with ceil_mode or dilation is not "
                                    f"supported")
            kernel = _square(args["kernel_size"], "kernel", name)
            layers.append(FloatLayer("maxpool", name, map_shape, kernel=kernel,
                                     stride=_square(args["stride"], "stride", name, kernel),
                                     padding=_square(args["padding"], "padding", name, 0)))
            map_shape = _shape(node)
        elif target in ("aten.avg_pool2d.default", "aten.adaptive_avg_pool2d.default",
                        "aten._adaptive_avg_pool2d.default"):
            pending_pool *= _avg_pool_factor(node, target, args, name)
        elif target in _FLATTEN:
            shape = _shape(node)
            if len(shape) != 1 and shape != _shape(current):
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
        current = node
    return input_shape, _finish(layers, pending_pool)


def _avg_pool_factor(node, target, args, name):
    in_shape = _shape(node.args[0])
    if target == "aten.avg_pool2d.default":
        kernel = _square(args["kernel_size"], "kernel", name)
        stride = _square(args["stride"], "stride", name, kernel)
        if stride != kernel or _square(args["padding"], "padding", name, 0) != 0 \
                or args["ceil_mode"] or args.get("divisor_override") is not None:
            raise OnespikeError(f"{name}: only non-overlapping average pooling (stride = "
                                f"kernel, no padding, no ceil_mode) is supported")
        return kernel
    out = _shape(node)
    factor = in_shape[1] // out[1]
    if out[1] * factor != in_shape[1] or out[2] * factor != in_shape[2]:
        raise OnespikeError(f"{name}: adaptive pooling {in_shape[1:]} → {out[1:]} is not an "
                            f"integer, square factor")
    return factor


def _finish(layers, pending_pool):
    if not layers or layers[-1].kind == "maxpool":
        raise OnespikeError("the model must end with a Linear or Conv2d readout layer")
    if layers[-1].relu:
        raise OnespikeError(f"the model ends with a ReLU after {layers[-1].name}; the readout "
                            f"layer must be a Linear (or Conv2d) without activation")
    if pending_pool > 1:
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

    model = model.eval()
    example = torch.as_tensor(np.asarray(example, dtype=np.float32)[None])
    try:
        program = torch.export.export(model, (example,))
    except Exception as e:
        raise OnespikeError(f"calibration samples of shape {tuple(example.shape[1:])} do not "
                            f"fit the model (torch.export: {str(e).splitlines()[0][:160]})") \
            from None
    return parse_exported(program)
