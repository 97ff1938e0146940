"""PyTorch front end for sequence models: a ``torch.export`` graph on ``(batch, steps,
features)`` (or ``(batch, steps, channels, length)``) → a chain of float layers with recurrent
ones.

A recurrent model's graph is not a chain: the input feeds one ``select`` per step, a state
feeds itself at the next step, and ``torch.export`` unrolls a Python loop over the steps.
So the graph is read symbolically. Every value is one of: a whole sequence (the input, an
``nn.RNN``'s output), the same with its steps folded into the batch (``x.reshape(B * T, C,
L)``), one step ``t`` of a *stream* (the outputs of one layer over the steps), the zeros of
an initial state, or an affine sum awaiting its ReLU. A ReLU over a sum makes (or continues)
a stream, keyed by the parameters it uses and the stream it reads: a sum ``W_x·x_t + b_x``
is a per-step Linear (or, with a convolution's weights, a per-step Conv); ``W_x·x_t + W_h·h
+ b`` with ``h`` the zeros at ``t = 0`` and the same stream's step ``t − 1`` after it is a
recurrent layer. So ``nn.RNN(nonlinearity="relu")``, an ``nn.RNNCell`` loop and two
``nn.Linear``s in a loop give the same streams, the same parameters, the same float layers.

The CRNN shape (convolutions over each step's features before the recurrence, Su et al.,
arXiv 2408.09403) reads the same way in either spelling: ``x.reshape(B * T, C, L)`` →
``Conv1d`` (+ ``BatchNorm1d``, folded) → ReLU → ``MaxPool1d``/``AvgPool1d`` →
``.reshape(B, T, -1)`` → ``nn.RNN``, or the same layers on ``x[:, t].unsqueeze(1)`` in the
loop. A value's *view* is each step's shape in the graph; a reshape only moves the axes
between the steps and the view, and a convolution reads the view as its ``(C, L)`` frame
(the network's input frame is then ``(C, 1, L)``). The batch is 1 in an exported example, so
``(T, 1, F)`` is read as folded steps by a convolution and as a time-major sequence by an RNN.
A convolution over the steps (``Conv1d`` on ``(batch, features, steps)``) is refused: the
recurrence takes one step's features at a time.

The chain is then read back from the readout: the last step of the last stream (``out[:,
-1]``, ``h_n[-1]``, the loop's final ``h``), optionally through more ReLU Linear layers, into
a Linear readout. Every stream up to the last recurrent one must run on every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from onespike.errors import OnespikeError
from onespike.mapper.frontend import (_ADAPTIVE_POOL, _AVG_POOL, _BATCH_NORM, _CLAMPS,
                                      _FLATTEN, _IDENTITY, _MAX_POOL, _MEAN, _RELU,
                                      _SHAPE_QUERIES, FloatLayer, _args, _avg_pool_factor,
                                      _batch_norm_affine, _conv_geometry, _geometry, _Graph,
                                      _module_name, _op_schema, _relu_cap)

__all__ = ["is_sequence_graph", "parse_sequence"]

_RNN = "aten.rnn_relu.input"
_CELL = "aten.rnn_relu_cell.default"
_REFUSED = {
    "aten.rnn_tanh.input": "a tanh RNN", "aten.rnn_tanh.data": "a tanh RNN",
    "aten.rnn_tanh_cell.default": "a tanh RNN cell", "aten.rnn_relu.data": "a packed sequence",
    "aten.lstm.input": "an LSTM", "aten.lstm.data": "an LSTM",
    "aten.lstm_cell.default": "an LSTM cell", "aten.gru.input": "a GRU",
    "aten.gru.data": "a GRU", "aten.gru_cell.default": "a GRU cell"}
_ZEROS = {"aten.zeros.default", "aten.new_zeros.default", "aten.zeros_like.default"}
_CONV = {"aten.conv1d.default", "aten.conv2d.default", "aten.conv1d.padding",
         "aten.conv2d.padding"}
_RESHAPES = _FLATTEN | {"aten.unsqueeze.default", "aten.squeeze.dim", "aten.squeeze.dims",
                        "aten.unflatten.int"}
_SEQUENCE_OPS = {_RNN, _CELL, "aten.select.int", "aten.unbind.int", *_REFUSED}
_EVERY_STEP = ("outputs at every step are not supported; take the last step (out[:, -1]) "
               "or the final state (h_n[-1]) into the readout")
_PER_STEP = ("the recurrence needs per-step inputs: convolve each step's features, "
             "x.reshape(B * T, C, F // C) → Conv1d → .reshape(B, T, -1) → nn.RNN (or the "
             "convolution on x[:, t].unsqueeze(1) in the loop)")


@dataclass(eq=False)
class _Stream:
    """One layer's outputs over the sequence steps (the input: ``layer`` None; an average
    pooling of ``source``, folded into the next layer: ``layer`` None, ``pool`` its factor)."""
    layer: FloatLayer
    source: "_Stream"
    shape: tuple                      # each step's map as the IR has it: (n,) or (C, H, W)
    state_weight: str = None          # the recurrent weight's parameter name
    steps: set = field(default_factory=set)
    pool: tuple = None
    label: str = None

    @property
    def name(self):
        return self.layer.name if self.layer is not None else self.label or "the input"


@dataclass(frozen=True)
class _Seq:                           # a whole sequence, its steps on ``time_axis``
    stream: _Stream
    time_axis: int
    view: tuple = None                # each step's shape in the graph (None: a vector)


@dataclass(frozen=True)
class _Folded:                        # every step folded into the batch: (batch·steps, *view)
    stream: _Stream
    view: tuple = None
    time_axis: int = 1                # the order of the fold (1: batch-major)


@dataclass(frozen=True)
class _Step:                          # step ``t`` of a stream
    stream: _Stream
    t: int
    view: tuple = None


@dataclass(frozen=True)
class _Across:                        # a sequence with its steps last: (batch, features, steps)
    stream: _Stream


@dataclass(frozen=True)
class _Zeros:                         # an initial state
    pass


@dataclass(frozen=True)
class _Term:                          # ``weight·operand + bias`` (either may be None)
    weight: object
    bias: object
    operand: object
    node: object
    norms: tuple = ()                 # batch norms folded into it, in order


@dataclass(frozen=True)
class _Sum:                           # an affine sum awaiting its ReLU (or the readout)
    terms: tuple


@dataclass(frozen=True)
class _Final:                         # nn.RNN's h_n: the last step of each layer
    streams: tuple


def _dim(d):
    """A static size, or a symbolic one as its sympy expression (a dynamic batch)."""
    return d if isinstance(d, int) else d.node.expr


def _dims(node):
    return tuple(_dim(d) for d in node.meta["val"].shape)


def _view(dims):
    """Each step's shape in the graph, normalized: a vector is None."""
    return None if len(dims) <= 1 else tuple(int(d) for d in dims)


def _ir_shape(view, size):
    """The IR's shape of a step viewed as ``view``: ``(C, L)`` is the signal ``(C, 1, L)``."""
    if view is None:
        return (size,)
    return (view[0], 1, view[1]) if len(view) == 2 else tuple(view)


def _size(stream):
    return int(np.prod(stream.shape))


def _is_conv(term):
    return str(term.node.target) in _CONV


def _unpooled(weight, pool, shape):
    """Weights on a ``shape`` map average-pooled by ``pool``, as weights on the map itself
    (exact: the pooling is linear); a recurrent layer takes its input without sum pooling."""
    (c, h, w), (kh, kw) = shape, pool
    pooled = weight.reshape(len(weight), c, h // kh, w // kw) / (kh * kw)
    full = np.zeros((len(weight), c, h, w))
    full[:, :, :h // kh * kh, :w // kw * kw] = pooled.repeat(kh, axis=2).repeat(kw, axis=3)
    return full.reshape(len(weight), -1)


def is_sequence_graph(program) -> bool:
    """Whether the graph runs over sequence steps: a recurrent operator, or a value read one
    step at a time, ``x[:, t]`` or ``x[:, t:t + 1]`` (the plain chain of
    :mod:`~onespike.mapper.frontend` has neither)."""
    nodes = program.graph.nodes
    steps = {node.args[2] if len(node.args) > 2 else None for node in nodes
             if str(node.target) == "aten.slice.Tensor" and node.args[0].op == "placeholder"
             and len(node.args) > 1 and node.args[1] == 1
             and node.meta["val"].dim() >= 3 and node.meta["val"].shape[1] == 1}
    return len(steps) > 1 or any(str(node.target) in _SEQUENCE_OPS for node in nodes)


def parse_sequence(program) -> tuple:
    """``((steps, *frame), [FloatLayer])`` of a sequence model in inference mode."""
    return _SequenceParser(program).run()


class _SequenceParser:
    def __init__(self, program):
        self.graph = _Graph(program)
        self.program = program
        self.values, self.keys = {}, {}
        node = self.graph.user_input()
        dims = _dims(node)
        if len(dims) not in (3, 4) or not all(isinstance(d, int) for d in dims[1:]):
            raise OnespikeError(f"a sequence model takes inputs (batch, steps, features), not "
                                f"{tuple(node.meta['val'].shape)}")
        self.batch, self.steps = dims[0], dims[1]
        view = _view(dims[2:])
        self.input = _Stream(None, None, _ir_shape(view, int(np.prod(dims[2:]))),
                             steps=set(range(self.steps)))
        self.values[node] = _Seq(self.input, 1, view)

    def run(self):
        for node in self.program.graph.nodes:
            if node.op == "call_function":
                self.values[node] = self.evaluate(node)
            elif node.op == "output":
                return self.finish(node)

    def value(self, arg):
        if isinstance(arg, (list, tuple)):
            return tuple(self.value(a) for a in arg)
        return self.values.get(arg, arg)

    def evaluate(self, node):
        target, name = str(node.target), _module_name(node)
        if target in _REFUSED:
            raise OnespikeError(f"{name}: {_REFUSED[target]} is not supported; onespike maps "
                                f"ReLU recurrences (nn.RNN(nonlinearity='relu'), "
                                f"nn.RNNCell(nonlinearity='relu') or Linear layers in a loop)")
        if target == "<built-in function getitem>":
            return self.value(node.args[0])[node.args[1]]
        if target in _SHAPE_QUERIES or (target.startswith("<built-in function") and all(
                isinstance(self.value(a), (int, type(None))) for a in node.args)):
            return None                 # arithmetic on sizes (B * T with a dynamic batch)
        args = _args(node) if _op_schema(node.target) is not None else {}
        if target in _IDENTITY:
            if target.startswith("aten.dropout") and args.get("train"):
                raise OnespikeError(f"{name}: dropout is in training mode; call model.eval()")
            return self.value(node.args[0])
        if target in _ZEROS:
            return _Zeros()
        if target in (_RNN, _CELL):
            return self.rnn(node, name, args) if target == _RNN else self.cell(node, name, args)
        if target == "aten.linear.default":
            operand = self.value(args["input"])
            if isinstance(operand, _Sum):
                raise OnespikeError(f"{name} follows a Linear layer without a ReLU in "
                                    f"between; every hidden layer needs a ReLU, and a state "
                                    f"is fed back through a ReLU only")
            self.vector(operand, name)
            return _Sum((_Term(args["weight"], args["bias"], operand, node),))
        if target in _CONV:
            return self.conv(node, name, args)
        if target in _BATCH_NORM:
            value = self.batch_norm(node, name, args)
            return value if target == "aten.batch_norm.default" else (value, None, None)
        if target in _MAX_POOL:
            return self.max_pool(node, name, args, one_d=target.endswith("1d.default"))
        if target in _AVG_POOL or target in _ADAPTIVE_POOL or target in _MEAN:
            return self.avg_pool(node, target, name, args)
        if target in ("aten.add.Tensor", "aten.add_.Tensor"):
            return self.add(node, name, args)
        if target in _RELU or target in _CLAMPS:
            return self.relu(node, name, self.value(node.args[0]),
                             _relu_cap(target, args, name))
        return self.reshape(node, target, name, args)

    def reshape(self, node, target, name, args):
        """Selecting steps, moving the time axis, folding the steps into the batch and back;
        anything else is refused."""
        value = self.value(node.args[0])
        if target in ("aten.transpose.int", "aten.permute.default") and isinstance(value, _Seq) \
                and value.view is None:
            dims = [args["dim0"], args["dim1"]] if "dim0" in args else list(args["dims"])
            order = list(range(3))
            if "dim0" in args:
                order[dims[0] % 3], order[dims[1] % 3] = dims[1] % 3, dims[0] % 3
            else:
                order = [d % 3 for d in dims]
            if order[2] == 2:
                return _Seq(value.stream, order.index(value.time_axis))
            if order[2] == value.time_axis:
                return _Across(value.stream)      # (batch, features, steps): refused when used
        if target == "aten.stack.default" and all(isinstance(v, _Step) for v in value) \
                and [(v.stream, v.t, v.view) for v in value] == [
                    (value[0].stream, t, value[0].view) for t in range(self.steps)] \
                and args["dim"] in (0, 1):
            return _Seq(value[0].stream, args["dim"], value[0].view)   # one stream, in order
        if target == "aten.select.int":
            return self.select(value, args["dim"], args["index"], name)
        if target == "aten.unbind.int" and isinstance(value, _Seq) \
                and args["dim"] % self.rank(value) == value.time_axis:
            return tuple(_Step(value.stream, t, value.view) for t in range(self.steps))
        if target == "aten.squeeze.dim" and isinstance(value, _Final) \
                and len(value.streams) == 1 and args["dim"] % 3 == 0:
            return _Step(value.streams[0], self.steps - 1)
        if target == "aten.slice.Tensor" and isinstance(value, (_Seq, _Folded, _Step)):
            return self.slice(node, value, args, name)
        if target in _RESHAPES and isinstance(value, (_Seq, _Folded, _Step)):
            return self.relayout(node, target, value, args, name)
        if isinstance(value, _Sum) and "softmax" not in target:
            after = "a convolution" if any(_is_conv(t) for t in value.terms) \
                else "a Linear layer"
            raise OnespikeError(f"{name}: {target} after {after}; onespike maps ReLU "
                                f"layers, and a state is fed back through a ReLU only")
        if "softmax" in target:
            raise OnespikeError(f"{name}: remove the softmax after the readout layer; the "
                                f"class is the argmax of the integer logits")
        raise OnespikeError(f"unsupported operation {name}: operator {target} on a sequence; "
                            f"supported: Linear (+ ReLU) or Conv1d (+ BatchNorm1d, ReLU, "
                            f"pooling) per step, nn.RNN / nn.RNNCell with "
                            f"nonlinearity='relu' or Linear layers in a loop over the steps, "
                            f"the last step into Linear layers")

    def rank(self, value):
        """Dimensions of a sequence value's tensor."""
        view = value.view or (None,)
        return len(view) + (2 if isinstance(value, _Seq) else 1)

    def relayout(self, node, target, value, args, name):
        """A reshape (view, flatten, unflatten, unsqueeze, squeeze) of steps: it may move
        axes between the steps and each step's view, never mix steps with features."""
        out, size = _dims(node), _size(value.stream)

        def view(dims):                 # each step's view, or False if ``dims`` is not one
            static = all(isinstance(d, int) for d in dims)
            return _view(dims) if static and int(np.prod(dims)) == size else False

        if isinstance(value, _Step):
            moved = target in ("aten.unsqueeze.default", "aten.squeeze.dim") \
                and args["dim"] % (len(out) if "unsqueeze" in target else self.rank(value)) == 0
            if not moved and len(out) >= 1 and out[0] == self.batch \
                    and view(out[1:]) is not False:
                return _Step(value.stream, value.t, view(out[1:]))
            raise OnespikeError(f"{name}: reshapes step {value.t} to "
                                f"{tuple(node.meta['val'].shape)}, which moves its batch "
                                f"axis; keep the batch first, e.g. x[:, t].unsqueeze(1)")
        lead = (self.batch, self.steps) if value.time_axis == 1 else (self.steps, self.batch)
        sequence = len(out) >= 2 and out[:2] == lead and view(out[2:]) is not False
        folded = len(out) >= 1 and out[0] == self.batch * self.steps \
            and view(out[1:]) is not False
        if sequence and (isinstance(value, _Seq) or not folded):
            return _Seq(value.stream, value.time_axis, view(out[2:]))
        if folded:
            return _Folded(value.stream, view(out[1:]), value.time_axis)
        shape = tuple(node.args[0].meta["val"].shape)
        raise OnespikeError(f"{name}: reshapes the sequence {shape} to "
                            f"{tuple(node.meta['val'].shape)}, which mixes its steps with "
                            f"their features; reshape to (B * T, ...) and back to (B, T, ...) "
                            f"only")

    def slice(self, node, value, args, name):
        """``x[:, t:t + 1]``: step ``t`` with a length-one axis; a slice that keeps the whole
        tensor is the tensor."""
        inputs, out = _dims(node.args[0]), _dims(node)
        if inputs == out:
            return value
        dim = args["dim"] % len(inputs)
        if isinstance(value, _Seq) and value.time_axis == 1 and dim == 1 and out[1] == 1 \
                and (args["step"] or 1) == 1:
            t = (args["start"] or 0) % self.steps
            return _Step(value.stream, t, (1,) + (value.view or (_size(value.stream),)))
        raise OnespikeError(f"{name}: slices the sequence {tuple(node.args[0].meta['val'].shape)} "
                            f"on axis {dim}; only one step (x[:, t] or x[:, t:t + 1]) can be "
                            f"taken")

    def select(self, value, dim, index, name):
        if isinstance(value, _Seq) and dim % self.rank(value) == value.time_axis:
            return _Step(value.stream, index % self.steps, value.view)
        if isinstance(value, _Final) and dim % 3 == 0:
            return _Step(value.streams[index % len(value.streams)], self.steps - 1)
        if isinstance(value, _Sum) and all(isinstance(t.operand, (_Seq, type(None)))
                                           for t in value.terms) \
                and not any(_is_conv(t) for t in value.terms):
            return _Sum(tuple(replace(t, operand=None if t.operand is None else
                                      self.select(t.operand, dim, index, name))
                              for t in value.terms))
        raise OnespikeError(f"{name}: selects along an axis that is not the sequence's steps; "
                            f"only a step (x[:, t]) or a layer of h_n (h_n[-1]) can be taken")

    def vector(self, value, name):
        """Refuse a Linear (or RNN) input that is not one vector per step."""
        if isinstance(value, _Across):
            raise OnespikeError(f"{name}: acts on the sequence's steps (its input is (batch, "
                                f"features, steps)); {_PER_STEP}")
        if isinstance(value, (_Seq, _Folded, _Step)) and value.view is not None:
            raise OnespikeError(f"{name}: a Linear layer applied to a {value.view} map acts "
                                f"on its last axis only; flatten each step first "
                                f"(.reshape(B, T, -1), or .flatten(1) in a loop)")

    def frame(self, value, name):
        """Check that ``name`` reads each step of ``value`` as the map its stream holds;
        the first map layer on the input sets the network's input frame."""
        stream = value.stream
        shape = _ir_shape(value.view, _size(stream))
        if stream.shape == shape:
            return
        if stream is self.input and len(stream.shape) == 1:
            stream.shape = shape
            return
        have = (stream.shape[0], stream.shape[2]) if len(stream.shape) == 3 \
            and stream.shape[1] == 1 else stream.shape
        raise OnespikeError(f"{name}: reads each step of {stream.name} as a {value.view} map, "
                            f"not as its {have}; onespike maps a chain of per-step layers on "
                            f"the same maps")

    def per_step(self, value, name, what):
        """The folded steps or the step that a per-step map layer reads."""
        if isinstance(value, _Seq) and value.time_axis == 0 and self.batch == 1:
            # (T, 1, ...) in an example of one sample: the steps folded into the batch
            value = _Folded(value.stream, (1,) + (value.view or (_size(value.stream),)), 0)
        if isinstance(value, _Across):
            raise OnespikeError(f"{name}: {what} over the sequence's steps (its input is "
                                f"(batch, features, steps)); {_PER_STEP}")
        if isinstance(value, _Seq):
            raise OnespikeError(f"{name}: {what} a whole sequence (batch, steps, ...), its "
                                f"steps as channels; {_PER_STEP}")
        if isinstance(value, _Sum):
            raise OnespikeError(f"{name}: {what} the output of "
                                f"{_module_name(value.terms[0].node)} before its ReLU; put "
                                f"the ReLU first (every hidden layer needs one)")
        if not isinstance(value, (_Folded, _Step)):
            raise OnespikeError(f"{name}: its input is not the steps of the sequence")
        return value

    def conv(self, node, name, args):
        value = self.per_step(self.value(args["input"]), name, "convolves")
        rank = len(args["weight"].meta["val"].shape)       # 3: Conv1d, 4: Conv2d
        if value.view is None or len(value.view) != rank - 1:
            raise OnespikeError(f"{name}: reads each step as a {value.view or 'vector'}; a "
                                f"{rank - 2}-D convolution takes (channels, "
                                f"{'length' if rank == 3 else 'height, width'}) per step, "
                                f"e.g. x.reshape(B * T, 1, F)")
        self.frame(value, name)
        return _Sum((_Term(args["weight"], args["bias"], value, node),))

    def batch_norm(self, node, name, args):
        if args.get("training"):
            raise OnespikeError(f"{name}: batch norm is in training mode; call model.eval() "
                                f"before exporting")
        value = self.value(args["input"])
        terms = value.terms if isinstance(value, _Sum) else ()
        if len(terms) != 1 or terms[0].weight is None \
                or not isinstance(terms[0].operand, (_Folded, _Step)):
            raise OnespikeError(f"{name}: batch norm must follow a per-step convolution or "
                                f"Linear layer directly (it is folded into it), on (batch · "
                                f"steps, channels, ...) or (batch, channels, ...)")
        return _Sum((replace(terms[0], norms=terms[0].norms + (node,)),))

    def pooled(self, node, value, stream):
        """``value``'s kind on ``stream``, its view from ``node``'s output."""
        view = _view(_dims(node)[1:])
        stream.steps.update(range(self.steps) if isinstance(value, _Folded) else (value.t,))
        if isinstance(value, _Folded):
            return _Folded(stream, view, value.time_axis)
        return _Step(stream, value.t, view)

    def max_pool(self, node, name, args, one_d):
        value = self.per_step(self.value(node.args[0]), name, "max-pools")
        self.frame(value, name)
        source = value.stream
        if source.pool is not None:
            raise OnespikeError(f"{name}: max pooling after average pooling is not supported")
        if args["ceil_mode"] or _geometry(args["dilation"], 1, one_d) != (1, 1):
            raise OnespikeError(f"{name}: max pooling with ceil_mode or dilation is not "
                                f"supported")
        kernel = _geometry(args["kernel_size"], 1, one_d)
        stride = _geometry(args["stride"], None, one_d) if args["stride"] else kernel
        padding = _geometry(args["padding"], 0, one_d)
        if any(p > k // 2 for p, k in zip(padding, kernel)):
            raise OnespikeError(f"{name}: max pooling padding {padding} exceeds half the "
                                f"kernel {kernel}")
        key = ("max", id(source), kernel, stride, padding)
        if key not in self.keys:
            layer = FloatLayer("maxpool", name, source.shape, kernel=kernel, stride=stride,
                               padding=padding)
            out = _dims(node)[1:]
            self.keys[key] = _Stream(layer, source, _ir_shape(_view(out), int(np.prod(out))))
        return self.pooled(node, value, self.keys[key])

    def avg_pool(self, node, target, name, args):
        value = self.value(node.args[0])
        if isinstance(value, _Seq) and value.stream.layer is not None \
                and value.stream.layer.kind == "recurrent":
            raise OnespikeError(f"{name}: pools the recurrent layer's outputs over the steps; "
                                f"{_EVERY_STEP}")
        if isinstance(value, _Sum):
            raise OnespikeError(f"{name}: average pooling before a ReLU does not commute "
                                f"with it; put the pooling after the ReLU")
        value = self.per_step(value, name, "average-pools")
        self.frame(value, name)
        factor = _avg_pool_factor(node, target, args, name)
        source = value.stream
        if source.pool is not None:          # pooling a pooling: one factor
            factor = tuple(a * b for a, b in zip(source.pool, factor))
            source = source.source
        key = ("avg", id(source), factor)
        if key not in self.keys:
            c, h, w = source.shape
            self.keys[key] = _Stream(None, source, (c, h // factor[0], w // factor[1]),
                                     pool=factor, label=name)
        return self.pooled(node, value, self.keys[key])

    def add(self, node, name, args):
        terms = []
        for arg in (args["self"], args["other"]):
            value = self.value(arg)
            if isinstance(value, _Sum):
                terms += value.terms
            elif getattr(arg, "name", None) in self.graph.tensors and args.get("alpha", 1) == 1:
                terms.append(_Term(None, arg, None, node))        # a bias parameter
            else:
                raise OnespikeError(f"{name}: adds {'a ReLU output' if isinstance(value, _Step) else 'a value'} "
                                    f"to a layer's sum; only a plain chain of layers and a "
                                    f"recurrent state through its weights are supported (no "
                                    f"residual connections)")
        return _Sum(tuple(terms))

    def rnn(self, node, name, args):
        if args["bidirectional"]:
            raise OnespikeError(f"{name}: a bidirectional RNN is not supported (it reads the "
                                f"sequence backwards too); use one direction")
        if args["train"] and args["dropout"] > 0 and args["num_layers"] > 1:
            raise OnespikeError(f"{name}: dropout between RNN layers is in training mode; call "
                                f"model.eval()")
        seq = self.value(args["input"])
        if isinstance(seq, _Folded) and self.batch == 1 and not args["batch_first"] \
                and seq.view is not None and seq.view[0] == 1:
            seq = _Seq(seq.stream, 0, _view(seq.view[1:]))   # (T, 1, F): time-major
        if isinstance(seq, _Folded):
            raise OnespikeError(f"{name}: its input has the steps folded into the batch "
                                f"(batch · steps, ...); reshape it back to (batch, steps, "
                                f"features) first, e.g. .reshape(B, T, -1)")
        self.vector(seq, name)
        if not isinstance(seq, _Seq):
            raise OnespikeError(f"{name}: its input is not the sequence")
        if seq.time_axis != (1 if args["batch_first"] else 0):
            raise OnespikeError(f"{name}: batch_first={bool(args['batch_first'])} but the "
                                f"steps are on axis {seq.time_axis}; onespike's inputs are "
                                f"(batch, steps, features)")
        self.zero_state(self.value(args["hx"]), name)
        params, per = list(args["params"]), 4 if args["has_biases"] else 2
        stream, streams = seq.stream, []
        for layer in range(args["num_layers"]):
            w = params[layer * per:(layer + 1) * per] + [None, None]
            own = None
            for t in range(self.steps):
                state = _Zeros() if t == 0 else _Step(own, t - 1)
                own = self.relu(node, name, _Sum((_Term(w[0], w[2], _Step(stream, t), node),
                                                  _Term(w[1], w[3], state, node))),
                                None).stream
            streams.append(own)
            stream = own
        return (_Seq(stream, seq.time_axis), _Final(tuple(streams)))

    def cell(self, node, name, args):
        hx = self.value(args["hx"]) if args["hx"] is not None else _Zeros()
        operand = self.value(args["input"])
        self.vector(operand, name)
        return self.relu(node, name, _Sum((
            _Term(args["w_ih"], args["b_ih"], operand, node),
            _Term(args["w_hh"], args["b_hh"], hx, node))), None)

    @staticmethod
    def zero_state(value, name):
        if not isinstance(value, _Zeros):
            raise OnespikeError(f"{name}: the initial state must be zeros (h_0 = 0)")

    @staticmethod
    def out_view(node, lead):
        """Each step's view of ``node``'s output (``lead`` axes before it)."""
        val = node.meta.get("val")
        return _view(tuple(val.shape[lead:])) if hasattr(val, "shape") else None

    def relu(self, node, name, value, cap):
        if isinstance(value, (_Seq, _Folded, _Step)) and value.stream is not self.input:
            raise OnespikeError(f"{name}: two activations in a row after "
                                f"{value.stream.name}")
        if not isinstance(value, _Sum):
            raise OnespikeError(f"{name}: a ReLU must follow a Linear layer")
        weighted = [t for t in value.terms if t.weight is not None]
        biases = [t.bias for t in value.terms if t.weight is None]
        if len(weighted) > 1 and any(_is_conv(t) for t in weighted):
            raise OnespikeError(f"{name}: a convolution inside the recurrence is not "
                                f"supported; apply it to each step's input before the "
                                f"recurrent layer")
        if any(isinstance(t.operand, (_Seq, _Folded)) for t in weighted):
            if len(weighted) != 1:
                raise OnespikeError(f"{name}: sums a whole sequence with another value")
            term = weighted[0]
            stream = self.stream(name, term, None, biases, cap)
            stream.steps.update(range(self.steps))
            if isinstance(term.operand, _Folded):
                return _Folded(stream, self.out_view(node, 1), term.operand.time_axis)
            return _Seq(stream, term.operand.time_axis, self.out_view(node, 2))
        state = [t for t in weighted if isinstance(t.operand, _Zeros) or (
            isinstance(t.operand, _Step) and t.operand.stream.state_weight is not None
            and t.operand.stream.state_weight == t.weight.name)]
        inputs = [t for t in weighted if t not in state]
        if len(inputs) != 1 or len(state) > 1 or not isinstance(inputs[0].operand, _Step):
            raise OnespikeError(f"{name}: a layer's sum must be one input through its weights "
                                f"(and a recurrent state through its own), not "
                                f"{len(weighted)} weighted terms; a state must be fed back "
                                f"through a ReLU")
        t = inputs[0].operand.t
        stream = self.stream(name, inputs[0], state[0] if state else None, biases, cap)
        if state and state[0].operand != (_Zeros() if t == 0 else _Step(stream, t - 1)):
            raise OnespikeError(f"{name}: the state at step {t} is not this layer's own state "
                                f"of step {t - 1} (h_0 must be zeros, h_t feeds step t + 1)")
        stream.steps.add(t)
        return _Step(stream, t, self.out_view(node, 1))

    def norm_key(self, term):
        return tuple(tuple(getattr(a, "name", a) for a in norm.args[1:5]) for norm in term.norms)

    def stream(self, name, term, state, biases, cap):
        """The stream of a ReLU over ``term`` (+ ``state``): found by its parameters, or new."""
        source = term.operand.stream
        key = (id(source), term.weight.name, getattr(term.bias, "name", None),
               state and state.weight.name, state and getattr(state.bias, "name", None),
               tuple(b.name for b in biases), cap, self.norm_key(term))
        if key in self.keys:
            return self.keys[key]
        node = term.node
        weight = self.graph.array(term.weight, node)
        bias = self.graph.array(term.bias, node)
        bias = np.zeros(len(weight)) if bias is None else bias
        for norm in term.norms:                         # y·factor + shift, per channel
            factor, shift = _batch_norm_affine(self.graph, norm, _args(norm),
                                               _module_name(norm))
            weight = weight * factor.reshape((-1,) + (1,) * (weight.ndim - 1))
            bias = bias * factor + shift
        for b in ([state.bias] if state else []) + biases:
            if b is not None:
                bias = bias + self.graph.array(b, node)
        pool = source.pool or (1, 1)
        in_shape = source.source.shape if source.pool else source.shape
        if _is_conv(term):
            if weight.shape[1] != source.shape[0]:
                raise OnespikeError(f"{name}: a convolution over {weight.shape[1]} channels "
                                    f"reads {source.shape[0]}")
            one_d = weight.ndim == 3
            weight = weight[:, :, None, :] if one_d else weight
            layer = FloatLayer("conv", _module_name(node), in_shape, weight, bias, pool=pool,
                               relu=True, cap=cap)
            _conv_geometry(layer, _args(node), weight, _module_name(node), one_d)
            out = _dims(node)[1:]
            shape = _ir_shape(_view(out), int(np.prod(out)))
        else:
            if weight.ndim != 2 or weight.shape[1] != _size(source):
                raise OnespikeError(f"{name}: weights {weight.shape} do not fit the input "
                                    f"{source.shape}")
            layer = FloatLayer("dense", _module_name(node), in_shape, weight, bias,
                               relu=True, cap=cap, pool=pool)
            shape = (len(weight),)
        if state is not None:
            layer.kind, layer.recurrent = "recurrent", self.graph.array(state.weight, node)
            if layer.recurrent.shape != (len(weight), len(weight)):
                raise OnespikeError(f"{name}: state weights {layer.recurrent.shape} are not "
                                    f"({len(weight)}, {len(weight)})")
            if pool != (1, 1):
                layer.weight, layer.pool = _unpooled(weight, pool, in_shape), (1, 1)
        stream = _Stream(layer, source, shape,
                         state_weight=state.weight.name if state else None)
        self.keys[key] = stream
        return stream

    def finish(self, node):
        outputs = node.args[0]
        if len(outputs) != 1:
            raise OnespikeError(f"the model returns {len(outputs)} values; onespike converts "
                                f"models with one output (the logits)")
        value = self.value(outputs[0])
        if isinstance(value, (_Seq, _Folded)) or (isinstance(value, _Sum) and any(
                isinstance(t.operand, (_Seq, _Folded)) for t in value.terms)):
            raise OnespikeError(_EVERY_STEP)
        if isinstance(value, _Step):
            raise OnespikeError(f"the model ends with a ReLU after {value.stream.name}; "
                                f"the readout layer must be a Linear without activation")
        weighted = [t for t in value.terms if t.weight is not None] \
            if isinstance(value, _Sum) else []
        if len(weighted) != 1 or not isinstance(weighted[0].operand, _Step) \
                or _is_conv(weighted[0]):
            raise OnespikeError("the model must end with a Linear readout on the last step")
        term = weighted[0]
        if term.operand.t != self.steps - 1:
            raise OnespikeError(f"the readout reads step {term.operand.t}, not the last "
                                f"({self.steps - 1}); {_EVERY_STEP}")
        readout = self.stream(_module_name(term.node), term, None,
                              [t.bias for t in value.terms if t.weight is None], None).layer
        readout.relu = False
        return (self.steps,) + self.input.shape, self.chain(term.operand.stream) + [readout]

    def chain(self, last):
        streams = []
        while last is not self.input:
            if last.layer is not None:          # an average pooling is in the next layer
                streams.insert(0, last)
            last = last.source
        recurrent = [i for i, s in enumerate(streams) if s.layer.kind == "recurrent"]
        if not recurrent:
            raise OnespikeError("the model reads a sequence but has no recurrent layer; "
                                "onespike maps ReLU RNNs (nn.RNN, nn.RNNCell, Linear layers "
                                "in a loop)")
        for stream in streams[:recurrent[-1] + 1]:
            missing = sorted(set(range(self.steps)) - stream.steps)
            if missing:
                raise OnespikeError(f"{stream.layer.name} does not run on every step (not on "
                                    f"step {missing[0]}); every layer up to the last "
                                    f"recurrent one runs once per step")
        layers = [s.layer for s in streams]
        if layers[0].kind in ("dense", "recurrent") and layers[0].pool == (1, 1):
            layers[0].in_shape = self.input.shape    # reads the frame flat, however shaped
        return layers
