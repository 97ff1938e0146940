"""The integer network as a standard ONNX graph, for engines onespike did not write.

:func:`to_onnx` writes a :class:`~onespike.ir.Network` as the quantized ReLU network of
``DESIGN.md`` §1 in ``int64`` arithmetic only: ``MatMul`` with the integer weights, ``Add``
of the integer biases, ``Div`` by the ramp ``R`` and ``Clip`` to ``[0, A]`` per hidden
layer, the readout's integer logits and their ``ArgMax`` (ties to the lowest index). So
onnxruntime computes :func:`onespike.sim.golden.closed_form`'s logits and classes bit for
bit (``tests/test_export_onnx.py``). Integer ``Div`` truncates toward zero where the contract
floors; the two differ only for a negative ``y``, whose activation the clip at 0 makes 0
either way.

ONNX runtimes implement ``Conv`` and ``MaxPool`` for floating point only, so windows are
gathered instead: the map, flattened, gets one zero appended (the value of every padding
position), and a constant index table ``Gather``s each output's window; a convolution is
then one ``MatMul``, a max pooling a ``ReduceMax``, a sum pooling a ``ReduceSum``.

The graph's input ``a0`` is the encoded input (``int64``, ``(batch, *encoder.shape)``, as
``net.encoder.encode(x)`` gives it; a sequence network's ``(batch, steps, *shape)``, its
steps unrolled); with ``encoder=True`` it is ``x`` (``float64``, the
model's input), encoded in the graph exactly like :meth:`~onespike.ir.Encoder.encode`
(the same float64 operations in the same order). Outputs: ``logits`` (``int64``,
``(batch, classes)``) and ``class`` (``int64``, ``(batch,)``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from onespike.errors import OnespikeError
from onespike.ir import Conv, Dense, MaxPool, Network, Recurrent

__all__ = ["to_onnx", "save_onnx", "OPSET"]

#: ONNX opset of the exported graph (``Reduce*`` take their axes as an input from 18 on).
OPSET = 18


def _onnx():
    try:
        import onnx
    except ImportError:
        raise OnespikeError("writing ONNX needs the onnx package: pip install "
                            "'onespike[onnx]'") from None
    return onnx


class _Builder:
    """Nodes and constants of one graph, each under a fresh name; equal constants are
    stored once (an unrolled sequence reads the same weights in every step)."""

    def __init__(self, onnx):
        self.onnx, self.nodes, self.initializers, self.count = onnx, [], [], 0
        self.stored = {}

    def name(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, hint, array):
        array = np.ascontiguousarray(array)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self.stored:
            self.stored[key] = self.name(hint)
            self.initializers.append(self.onnx.numpy_helper.from_array(array,
                                                                      self.stored[key]))
        return self.stored[key]

    def op(self, op_type, inputs, hint, **attrs):
        out = self.name(hint)
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [out],
                                                     name=out, **attrs))
        return out


def _window_table(shape, kernel, stride, padding):
    """Flat indices ``(C, Ho, Wo, kh·kw)`` of each window over a ``(C, H, W)`` map; padding
    positions point at the zero appended after the map (index ``C·H·W``)."""
    c, h, w = shape
    (ph, pw), (sh, sw) = padding, stride
    index = np.arange(c * h * w, dtype=np.int64).reshape(c, h, w)
    index = np.pad(index, ((0, 0), (ph, ph), (pw, pw)), constant_values=c * h * w)
    windows = np.lib.stride_tricks.sliding_window_view(index, tuple(kernel), axis=(1, 2))
    windows = windows[:, ::sh, ::sw]
    return windows.reshape(windows.shape[:3] + (-1,))


def _gather(b, x, shape, table, hint):
    """``x`` (batch, *shape) → its windows ``(batch, *table.shape)``."""
    flat = b.op("Reshape", [x, b.const("flat", np.array([-1, int(np.prod(shape))]))], "flat")
    padded = b.op("Pad", [flat, b.const("pads", np.array([0, 0, 0, 1]))], "padded")
    return b.op("Gather", [padded, b.const(f"{hint}_table", table)], hint, axis=1)


def _pool(b, x, shape, kernel, stride, padding, reduce, hint):
    windows = _gather(b, x, shape, _window_table(shape, kernel, stride, padding), hint)
    return b.op(reduce, [windows, b.const("axes", np.array([-1]))], hint, keepdims=0)


def _weighted(b, layer, x, state=None):
    """``Σ_j w_ij a_j + b_i`` of a Dense, Conv or Recurrent layer (sum pooling first; a
    recurrent layer adds ``W_h·h`` of its previous ``state``, if any)."""
    shape = layer.in_shape
    if layer.pooling:
        x = _pool(b, x, shape, layer.pool, layer.pool, (0, 0), "ReduceSum", "sum_pool")
        shape = layer.pooled_shape
    if isinstance(layer, (Dense, Recurrent)):
        flat = b.op("Reshape", [x, b.const("flat", np.array([-1, int(np.prod(shape))]))],
                    "flat")
        y = b.op("MatMul", [flat, b.const("weight", layer.weight.T)], "dense")
        if state is not None:
            h = b.op("MatMul", [state, b.const("recurrent", layer.recurrent.T)], "state")
            y = b.op("Add", [y, h], "with_state")
        return b.op("Add", [y, b.const("bias", layer.bias)], "dense_bias")
    table = _window_table(shape, layer.kernel, layer.stride, layer.padding)
    table = table.transpose(1, 2, 0, 3).reshape(table.shape[1], table.shape[2], -1)
    patches = _gather(b, x, shape, table, "patches")       # (batch, Ho, Wo, C·kh·kw)
    weight = layer.weight.reshape(len(layer.weight), -1).T
    y = b.op("MatMul", [patches, b.const("weight", weight)], "conv")
    y = b.op("Transpose", [y], "conv_nchw", perm=[0, 3, 1, 2])
    bias = layer.bias[:, None, None] if layer.bias.ndim == 1 else layer.bias
    return b.op("Add", [y, b.const("bias", bias)], "conv_bias")


def _requantize(b, layer, y):
    """``clip(floor(y / R), 0, A)``: truncating ``Div``, exact after the clip at 0."""
    ramp = layer.per_channel(layer.ramp)
    q = b.op("Div", [y, b.const("ramp", ramp)], "requant")
    return b.op("Clip", [q, b.const("zero", np.array(0, np.int64)),
                         b.const("levels", np.array(layer.levels, np.int64))], "act")


def _encoder(b, encoder, x):
    """``clip(floor((x − offset)/scale + 1/2), 0, A)`` in float64, then int64."""
    per = (-1, 1, 1) if len(encoder.shape) == 3 else (-1,)
    if encoder.signal_shape:
        lead = (-1,) if encoder.steps is None else (-1, encoder.steps)
        x = b.op("Reshape", [x, b.const("shape", np.array(lead + encoder.shape))], "image")
    x = b.op("Sub", [x, b.const("offset", encoder.offset.reshape(per))], "centered")
    x = b.op("Div", [x, b.const("scale", encoder.scale.reshape(per))], "scaled")
    x = b.op("Floor", [b.op("Add", [x, b.const("half", np.array(0.5))], "half_up")], "floor")
    x = b.op("Clip", [x, b.const("zero", np.array(0.0)),
                      b.const("levels", np.array(float(encoder.levels)))], "levels")
    return b.op("Cast", [x], "a0", to=b.onnx.TensorProto.INT64)


def _layer(b, layer, a, state=None):
    """One layer's output (activations, or the readout's logits) from its input ``a``."""
    if isinstance(layer, MaxPool):
        return _pool(b, a, layer.in_shape, layer.kernel, layer.stride, layer.padding,
                     "ReduceMax", "max_pool")
    y = _weighted(b, layer, a, state)
    return y if layer.is_readout else _requantize(b, layer, y)


def _unrolled(b, net, a0):
    """The per-step layers once per sequence step (each recurrent layer reading its own
    previous output, none before the first step): the last step's output."""
    states = {}
    for t in range(net.steps):
        a = b.op("Gather", [a0, b.const("step", np.array(t, np.int64))], f"step{t}", axis=1)
        for i in range(net.per_step_layers):
            a = _layer(b, net.layers[i], a, states.get(i))
            if isinstance(net.layers[i], Recurrent):
                states[i] = a
    return a


def to_onnx(net: Network, *, encoder=False):
    """The integer network ``net`` as an ``onnx.ModelProto`` (see the module notes); a
    sequence network's steps are unrolled, its input ``(batch, steps, *shape)``."""
    onnx = _onnx()
    b = _Builder(onnx)
    helper, tp = onnx.helper, onnx.TensorProto
    shape = net.encoder.signal_shape or net.encoder.shape
    lead = ["batch"] if net.steps is None else ["batch", net.steps]
    if encoder:
        graph_input = helper.make_tensor_value_info("x", tp.DOUBLE, lead + list(shape))
        a = _encoder(b, net.encoder, "x")
    else:
        graph_input = helper.make_tensor_value_info("a0", tp.INT64,
                                                    lead + list(net.encoder.shape))
        a = "a0"
    if net.steps is not None:
        a = _unrolled(b, net, a)
    for layer in net.layers[net.per_step_layers:]:
        a = _layer(b, layer, a)
    classes = net.num_classes
    b.nodes.append(helper.make_node("Reshape", [a, b.const("flat", np.array([-1, classes]))],
                                    ["logits"], name="logits"))
    b.nodes.append(helper.make_node("ArgMax", ["logits"], ["class"], name="class", axis=1,
                                    keepdims=0, select_last_index=0))
    outputs = [helper.make_tensor_value_info("logits", tp.INT64, ["batch", classes]),
               helper.make_tensor_value_info("class", tp.INT64, ["batch"])]
    graph = helper.make_graph(b.nodes, "onespike_integer_network", [graph_input], outputs,
                              b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="onespike",
                              doc_string="onespike integer network (exact, int64): "
                                         "logits equal onespike.sim.closed_form")
    onnx.checker.check_model(model, full_check=True)
    return model


def save_onnx(net: Network, path, *, encoder=False) -> Path:
    """Write :func:`to_onnx`'s graph to ``path``; returns the path."""
    onnx = _onnx()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(to_onnx(net, encoder=encoder), str(path))
    return path
