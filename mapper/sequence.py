"""PyTorch front end for sequence models: a ``torch.export`` graph on ``(batch, steps,
features)`` → a chain of float layers with recurrent ones.

A recurrent model's graph is not a chain: the input feeds one ``select`` per step, a state
feeds itself at the next step, and ``torch.export`` unrolls a Python loop over the steps.
So the graph is read symbolically. Every value is one of: a whole sequence (the input, an
``nn.RNN``'s output), one step ``t`` of a *stream* (the outputs of one layer over the steps),
the zeros of an initial state, or an affine sum awaiting its ReLU. A ReLU over a sum makes
(or continues) a stream, keyed by the parameters it uses and the stream it reads: a sum
``W_x·x_t + b_x`` is a per-step Linear; ``W_x·x_t + W_h·h + b`` with ``h`` the zeros at
``t = 0`` and the same stream's step ``t − 1`` after it is a recurrent layer. So
``nn.RNN(nonlinearity="relu")``, an ``nn.RNNCell`` loop and two ``nn.Linear``s in a loop
give the same streams, the same parameters, the same float layers.

The chain is then read back from the readout: the last step of the last stream (``out[:,
-1]``, ``h_n[-1]``, the loop's final ``h``), optionally through more ReLU Linear layers, into
a Linear readout. Every stream up to the last recurrent one must run on every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from onespike.errors import OnespikeError
from onespike.mapper.frontend import (_CLAMPS, _IDENTITY, _RELU, _SHAPE_QUERIES, FloatLayer,
                                      _args, _Graph, _module_name, _op_schema, _relu_cap)

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
_SEQUENCE_OPS = {_RNN, _CELL, "aten.select.int", "aten.unbind.int", *_REFUSED}
_EVERY_STEP = ("outputs at every step are not supported; take the last step (out[:, -1]) "
               "or the final state (h_n[-1]) into the readout")


@dataclass(eq=False)
class _Stream:
    """One layer's outputs over the sequence steps (the input: ``layer`` None)."""
    layer: FloatLayer
    source: "_Stream"
    shape: tuple
    state_weight: str = None          # the recurrent weight's parameter name
    steps: set = field(default_factory=set)


@dataclass(frozen=True)
class _Seq:                           # a whole sequence, its steps on ``time_axis``
    stream: _Stream
    time_axis: int


@dataclass(frozen=True)
class _Step:                          # step ``t`` of a stream
    stream: _Stream
    t: int


@dataclass(frozen=True)
class _Zeros:                         # an initial state
    pass


@dataclass(frozen=True)
class _Term:                          # ``weight·operand + bias`` (either may be None)
    weight: object
    bias: object
    operand: object
    node: object


@dataclass(frozen=True)
class _Sum:                           # an affine sum awaiting its ReLU (or the readout)
    terms: tuple


@dataclass(frozen=True)
class _Final:                         # nn.RNN's h_n: the last step of each layer
    streams: tuple


def is_sequence_graph(program) -> bool:
    """Whether the graph runs over sequence steps: a recurrent operator, or a value read one
    step at a time (the plain chain of :mod:`~onespike.mapper.frontend` has neither)."""
    return any(str(node.target) in _SEQUENCE_OPS for node in program.graph.nodes)


def parse_sequence(program) -> tuple:
    """``((steps, *frame), [FloatLayer])`` of a sequence model in inference mode."""
    return _SequenceParser(program).run()


class _SequenceParser:
    def __init__(self, program):
        self.graph = _Graph(program)
        self.program = program
        self.values, self.keys = {}, {}
        node = self.graph.user_input()
        shape = tuple(int(d) for d in node.meta["val"].shape[1:])
        if len(shape) != 2:
            raise OnespikeError(f"a sequence model takes inputs (batch, steps, features), not "
                                f"{tuple(node.meta['val'].shape)}")
        self.steps = shape[0]
        self.input = _Stream(None, None, shape[1:], steps=set(range(self.steps)))
        self.values[node] = _Seq(self.input, 1)

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
        if target in _SHAPE_QUERIES:
            return None
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
            return _Sum((_Term(args["weight"], args["bias"], operand, node),))
        if target in ("aten.add.Tensor", "aten.add_.Tensor"):
            return self.add(node, name, args)
        if target in _RELU or target in _CLAMPS:
            return self.relu(node, name, self.value(node.args[0]),
                             _relu_cap(target, args, name))
        return self.reshape(node, target, name, args)

    def reshape(self, node, target, name, args):
        """Selecting steps and moving the time axis; anything else is refused."""
        value = self.value(node.args[0])
        if target in ("aten.transpose.int", "aten.permute.default") and isinstance(value, _Seq):
            dims = [args["dim0"], args["dim1"]] if "dim0" in args else list(args["dims"])
            order = list(range(3))
            if "dim0" in args:
                order[dims[0] % 3], order[dims[1] % 3] = dims[1] % 3, dims[0] % 3
            else:
                order = [d % 3 for d in dims]
            if order[2] == 2:
                return _Seq(value.stream, order.index(value.time_axis))
        if target == "aten.stack.default" and all(isinstance(v, _Step) for v in value) \
                and [(v.stream, v.t) for v in value] == [
                    (value[0].stream, t) for t in range(self.steps)] and args["dim"] in (0, 1):
            return _Seq(value[0].stream, args["dim"])    # the steps of one stream, in order
        if target == "aten.select.int":
            return self.select(value, args["dim"], args["index"], name)
        if target == "aten.unbind.int" and isinstance(value, _Seq) \
                and args["dim"] % 3 == value.time_axis:
            return tuple(_Step(value.stream, t) for t in range(self.steps))
        if target == "aten.squeeze.dim" and isinstance(value, _Final) \
                and len(value.streams) == 1 and args["dim"] % 3 == 0:
            return _Step(value.streams[0], self.steps - 1)
        if isinstance(value, _Sum) and "softmax" not in target:
            raise OnespikeError(f"{name}: {target} after a Linear layer; onespike maps ReLU "
                                f"layers, and a state is fed back through a ReLU only")
        if "softmax" in target:
            raise OnespikeError(f"{name}: remove the softmax after the readout layer; the "
                                f"class is the argmax of the integer logits")
        raise OnespikeError(f"unsupported operation {name}: operator {target} on a sequence; "
                            f"supported: Linear (+ ReLU) per step, nn.RNN / nn.RNNCell with "
                            f"nonlinearity='relu' or Linear layers in a loop over the steps, "
                            f"the last step into Linear layers")

    def select(self, value, dim, index, name):
        if isinstance(value, _Seq) and dim % 3 == value.time_axis:
            return _Step(value.stream, index % self.steps)
        if isinstance(value, _Final) and dim % 3 == 0:
            return _Step(value.streams[index % len(value.streams)], self.steps - 1)
        if isinstance(value, _Sum) and all(isinstance(t.operand, (_Seq, type(None)))
                                           for t in value.terms):
            return _Sum(tuple(_Term(t.weight, t.bias, None if t.operand is None else
                                    self.select(t.operand, dim, index, name), t.node)
                              for t in value.terms))
        raise OnespikeError(f"{name}: selects along an axis that is not the sequence's steps; "
                            f"only a step (x[:, t]) or a layer of h_n (h_n[-1]) can be taken")

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
        return self.relu(node, name, _Sum((
            _Term(args["w_ih"], args["b_ih"], self.value(args["input"]), node),
            _Term(args["w_hh"], args["b_hh"], hx, node))), None)

    @staticmethod
    def zero_state(value, name):
        if not isinstance(value, _Zeros):
            raise OnespikeError(f"{name}: the initial state must be zeros (h_0 = 0)")

    def relu(self, node, name, value, cap):
        if isinstance(value, (_Seq, _Step)) and value.stream is not self.input:
            raise OnespikeError(f"{name}: two activations in a row after "
                                f"{value.stream.layer.name}")
        if not isinstance(value, _Sum):
            raise OnespikeError(f"{name}: a ReLU must follow a Linear layer")
        weighted = [t for t in value.terms if t.weight is not None]
        biases = [t.bias for t in value.terms if t.weight is None]
        if any(isinstance(t.operand, _Seq) for t in weighted):
            if len(weighted) != 1:
                raise OnespikeError(f"{name}: sums a whole sequence with another value")
            term = weighted[0]
            stream = self.stream(name, term, None, biases, cap)
            stream.steps.update(range(self.steps))
            return _Seq(stream, term.operand.time_axis)
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
        return _Step(stream, t)

    def stream(self, name, term, state, biases, cap):
        """The stream of a ReLU over ``term`` (+ ``state``): found by its parameters, or new."""
        source = term.operand.stream
        key = (id(source), term.weight.name, getattr(term.bias, "name", None),
               state and state.weight.name, state and getattr(state.bias, "name", None),
               tuple(b.name for b in biases), cap)
        if key in self.keys:
            return self.keys[key]
        node = term.node
        weight = self.graph.array(term.weight, node)
        if weight.ndim != 2 or weight.shape[1] != int(np.prod(source.shape)):
            raise OnespikeError(f"{name}: weights {weight.shape} do not fit the input "
                                f"{source.shape}")
        bias = np.zeros(len(weight))
        for b in [term.bias] + ([state.bias] if state else []) + biases:
            if b is not None:
                bias = bias + self.graph.array(b, node)
        layer = FloatLayer("dense", _module_name(node), source.shape, weight, bias,
                           relu=True, cap=cap)
        if state is not None:
            layer.kind, layer.recurrent = "recurrent", self.graph.array(state.weight, node)
            if layer.recurrent.shape != (len(weight), len(weight)):
                raise OnespikeError(f"{name}: state weights {layer.recurrent.shape} are not "
                                    f"({len(weight)}, {len(weight)})")
        stream = _Stream(layer, source, (len(weight),),
                         state_weight=state.weight.name if state else None)
        self.keys[key] = stream
        return stream

    def finish(self, node):
        outputs = node.args[0]
        if len(outputs) != 1:
            raise OnespikeError(f"the model returns {len(outputs)} values; onespike converts "
                                f"models with one output (the logits)")
        value = self.value(outputs[0])
        if isinstance(value, _Seq) or (isinstance(value, _Sum) and any(
                isinstance(t.operand, _Seq) for t in value.terms)):
            raise OnespikeError(_EVERY_STEP)
        if isinstance(value, _Step):
            raise OnespikeError(f"the model ends with a ReLU after {value.stream.layer.name}; "
                                f"the readout layer must be a Linear without activation")
        weighted = [t for t in value.terms if t.weight is not None] \
            if isinstance(value, _Sum) else []
        if len(weighted) != 1 or not isinstance(weighted[0].operand, _Step):
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
        return [s.layer for s in streams]
