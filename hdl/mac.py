"""The dense baseline: the same integer network as multiply-accumulate over activation
streams (``--coding dense``), for a like-for-like comparison with the TTFS cores.

An *activation stream* carries, per sample and per layer, ``{index, value, end}``
transfers: the activations of the map in any order (``value`` in ``1..A``, or ``0..A`` when
the producer does not skip zeros; a neuron that is not sent has activation 0), then one
marker with ``end = 1`` (``index`` and ``value`` unused) that closes the sample.

* :class:`ActivationSource`: the input activations, one per cycle in C order, as a stream.
* :class:`MacCore`: a dense or convolution layer. ``y = b + Σ w·a`` with ``P`` lanes
  (``P`` output channels per weight word, the weight rows of
  :meth:`~onespike.hdl.dense.DenseCore.weight_words` /
  :meth:`~onespike.hdl.conv.ConvCore.weight_words`), then ``clip(floor(y / R), 0, A)`` by
  restoring division limited to ``act_bits`` quotient bits — exact by construction.
* :class:`ActivationMaxPool`: max pooling, a running maximum per pooled neuron.
"""

import math

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Signal, signed
from amaranth.lib import data, memory, stream
from amaranth.lib.wiring import In, Out

from onespike.hdl.conv import core_sizes
from onespike.hdl.arith import const_multiply, multiply
from onespike.hdl.core import Odometer, RangeCounter
from onespike.hdl.encoder import flag, positive
from onespike.hdl.maxpool import pool_spans, pooled_candidate
from onespike.hdl.streams import (SizedComponent, activation_layout, logit_layout,
                                  neuron_layout, pass_bank)
from onespike.ir import Conv, Dense, LayerWidths, MaxPool

__all__ = ["value_layout", "ActivationSource", "MacCore", "ActivationMaxPool", "SourceSizes",
           "MacSizes", "ActivationPoolSizes", "multiply", "const_multiply"]


def value_layout(shape, levels: int) -> data.StructLayout:
    """Payload of an activation stream over a map of ``shape`` with activations ``0..levels``."""
    return data.StructLayout({
        "index": neuron_layout(shape),    # neuron (ignored when end = 1)
        "value": range(levels + 1),       # its activation
        "end": 1,                         # 1: the sample's map is complete, no activation
    })


class SourceSizes:
    """:class:`ActivationSource`'s sizes as plain data."""

    def __init__(self, *, shape, levels: int, skip_zeros: bool = True):
        self._shape = (shape,) if isinstance(shape, int) else tuple(int(n) for n in shape)
        self._levels = positive(levels, "Level count")
        self._skip_zeros = flag(skip_zeros, "skip_zeros")

    @property
    def shape(self):
        return self._shape

    @property
    def neurons(self):
        return int(np.prod(self._shape))

    @property
    def levels(self):
        return self._levels

    @property
    def skip_zeros(self):
        return self._skip_zeros

    memory_bits = 0


class ActivationSource(SizedComponent, SourceSizes):
    """``i``: one sample's activations, one per transfer in C order (as the TTFS
    encoder takes them); ``o``: the activation stream, every value (or, with
    ``skip_zeros``, the non-zero ones) with its neuron index, then the end marker.

    A value passes straight through in the cycle it arrives (``i.ready`` follows
    ``o.ready``; a skipped zero is taken at once); the end marker costs one cycle after the
    sample's last value. Nothing to clear after a reset.
    """

    def members(self):
        return {"i": In(stream.Signature(activation_layout(self._levels))),
                "o": Out(stream.Signature(value_layout(self._shape, self._levels)))}

    def elaborate(self, platform):
        m = Module()
        image = len(self._shape) == 3
        where = Odometer(self._shape, "at")            # c, y, x (or the vector index)
        if image:
            c, y, x = where.values
            m.d.comb += [self.o.payload.index.c.eq(c), self.o.payload.index.y.eq(y),
                         self.o.payload.index.x.eq(x)]
        else:
            m.d.comb += self.o.payload.index.eq(where.values[0])
        value = self.i.payload.value
        with m.FSM():
            with m.State("PASS"):
                keep = (value != 0) if self._skip_zeros else Const(1)
                m.d.comb += [self.o.payload.value.eq(value),
                             self.o.valid.eq(self.i.valid & keep),
                             self.i.ready.eq(self.o.ready | ~keep)]
                with m.If(self.i.valid & self.i.ready):
                    where.step(m)
                    with m.If(where.last()):
                        m.next = "END"
            with m.State("END"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.end.eq(1)]
                with m.If(self.o.ready):
                    m.next = "PASS"
        return m


class _Side:
    """One side's view of an accumulator bank: ``addr`` is read (data next cycle), word
    ``word`` is written with ``write`` when ``en``."""

    def __init__(self, name, layout, words):
        self.word = Signal(range(words), name=f"{name}_word")
        self.addr = Signal(range(words), name=f"{name}_addr")
        self.data = Signal(layout, name=f"{name}_acc")
        self.write = Signal(layout, name=f"{name}_acc_next")
        self.en = Signal(name=f"{name}_acc_en")
        self.last = self.word == words - 1


class MacSizes:
    """:class:`MacCore`'s sizes as plain data (the synapse geometry a TTFS core's sizes)."""

    def __init__(self, layer, *, in_levels: int, lanes: int, skip_zeros: bool = True,
                 use_dsp: bool = True):
        if not isinstance(layer, (Dense, Conv)):
            raise TypeError(f"MacCore needs a Dense or Conv layer, not {type(layer).__name__}")
        self._skip_zeros = flag(skip_zeros, "skip_zeros")
        self._use_dsp = flag(use_dsp, "use_dsp")
        self._in_levels = positive(in_levels, "Input level count")
        sums = layer.abs_weight_sums
        bound = int((layer.abs_bias_max + in_levels * sums).max())
        self._widths = LayerWidths(int(sums.max()), bound)
        self._geometry = core_sizes(layer)(layer, in_levels=in_levels, widths=self._widths,
                                           lanes=lanes)
        self._layer = layer
        self._outputs = int(np.prod(layer.out_shape))

    # -- sizes (the manifest reads these) ----------------------------------------------
    @property
    def layer(self):
        return self._layer

    @property
    def lanes(self):
        return self._geometry.lanes

    @property
    def groups(self):
        return self._geometry.groups

    @property
    def words(self):
        return self._geometry.words

    @property
    def inputs(self):
        return self._geometry.inputs

    @property
    def fan_out(self):
        """Cycles per input activation."""
        return self._geometry.fan_out

    @property
    def skip_zeros(self):
        return self._skip_zeros

    @property
    def use_dsp(self):
        return self._use_dsp

    @property
    def weight_bits(self):
        return self._geometry.weight_bits

    @property
    def weight_contents(self):
        return self._geometry.weight_contents

    @property
    def weight_memory_bits(self):
        return self._geometry.weight_memory_bits

    @property
    def accumulator_bits(self):
        """Bits of ``y``: ``|y| ≤ |b| + A_in·Σ|w|``."""
        return self._widths.membrane_bits

    @property
    def ramp_bits(self):
        return 1 if self._layer.is_readout else int(self._layer.ramp.max()).bit_length()

    @property
    def state_memory_bits(self):
        """Bits of both accumulator banks."""
        return 2 * self.words * self.lanes * self.accumulator_bits

    @property
    def multipliers(self):
        """Multiplies per cycle (one per lane)."""
        return self.lanes

    def neuron_constants(self) -> tuple:
        """``(bias, ramp, alive)`` per state word and lane, ``(words, lanes)`` each: the
        constants memory's fields (``alive`` 0 in the padding lanes)."""
        geometry = self._geometry
        bias, ramp = geometry.neuron_constants()
        alive = np.zeros((self.words, self.lanes), dtype=np.int64)
        alive.reshape(self.groups, -1, self.lanes)[:] = \
            geometry._channel_lanes(np.ones(geometry._channels))[:, None, :]
        return bias, ramp, alive


class MacCore(SizedComponent, MacSizes):
    """A dense or convolution layer over activation streams, ``P`` lanes.

    Accumulate (one bank): each activation ``{index, value}`` on ``i`` adds
    ``w · value`` into the accumulators its synapses reach, one ``P``-lane word per cycle
    (:attr:`fan_out` cycles: ``groups`` for a dense layer, ``K·K·groups`` for a
    convolution; the synapse geometry is :class:`~onespike.hdl.dense.DenseCore`'s /
    :class:`~onespike.hdl.conv.ConvCore`'s). The end marker hands the bank to the other
    side, and the next sample accumulates into the other bank (accumulators start at the
    bias).

    Drain (the other bank, concurrently):

    * hidden layer: per state word, ``act_bits`` cycles of compare-subtract per lane
      (restoring division: bit ``b`` of the quotient is set when the remainder is at least
      ``R·2^b``; starting from ``y`` this gives the largest ``q`` in ``0..A`` with
      ``q·R ≤ y``, which is ``clip(floor(y/R), 0, A)`` exactly), then the word's
      activations on ``o`` one per cycle (zeros left out with ``skip_zeros``), then the end
      marker. The biases are written back.
    * readout: the accumulators are sent on ``o`` as logits (``last`` on the final one).

    Backpressure on ``o`` stalls the drain only. After a reset both banks are rewritten
    with the biases (``words + 1`` cycles) before ``i`` is ready.
    """

    def members(self):
        layer = self._layer
        o = logit_layout(self._outputs, self.accumulator_bits) if layer.is_readout \
            else value_layout(layer.out_shape, layer.levels)
        return {"i": In(stream.Signature(value_layout(layer.in_shape, self._in_levels))),
                "o": Out(stream.Signature(o))}

    def elaborate(self, platform):
        m = Module()
        layer = self._layer
        lanes, words = self.lanes, self.words
        acc_shape = signed(self.accumulator_bits)
        acc_word = data.ArrayLayout(acc_shape, lanes)

        contents = self.weight_contents
        m.submodules.weights = weights = memory.Memory(
            shape=data.ArrayLayout(signed(self.weight_bits), lanes), depth=len(contents),
            init=contents.tolist(), attrs={"onespike_role": "weights"})  # for board mapping
        weight = weights.read_port()

        bias, ramp, alive = self.neuron_constants()
        neuron = data.StructLayout({"bias": acc_shape, "ramp": range(2 ** self.ramp_bits),
                                    "alive": 1})
        m.submodules.constants = constants = memory.Memory(
            shape=data.ArrayLayout(neuron, lanes), depth=words,
            init=[[{"bias": b, "ramp": r, "alive": a} for b, r, a in zip(*word)]
                  for word in zip(bias.tolist(), ramp.tolist(), alive.tolist())])

        full = Signal(2)                     # bank belongs to the drain
        bank = {"acc": Signal(), "drain": Signal()}
        side = {name: _Side(name, acc_word, words) for name in bank}
        clearing = Signal()                  # the accumulate side writes both banks
        for b in range(2):
            m.submodules[f"acc{b}"] = bank_memory = memory.Memory(
                shape=acc_word, depth=words, init=bias.tolist())
            write = bank_memory.write_port()
            read = bank_memory.read_port(transparent_for=[write])
            with m.If(full[b]):
                self._connect(m, read, write, side["drain"], bank["drain"] == b)
            with m.Else():
                self._connect(m, read, write, side["acc"], (bank["acc"] == b) | clearing)
            for name in bank:
                with m.If(bank[name] == b):
                    m.d.comb += side[name].data.eq(read.data)

        acc_constants = constants.read_port()
        m.d.comb += acc_constants.addr.eq(side["acc"].addr)
        self._accumulate(m, weight, side["acc"], acc_constants, full, bank["acc"], clearing)
        drain_constants = constants.read_port()
        m.d.comb += drain_constants.addr.eq(side["drain"].addr)
        drain = self._readout if layer.is_readout else self._requantize
        drain(m, side["drain"], drain_constants, full, bank["drain"])
        return m

    @staticmethod
    def _connect(m, read, write, side, write_enable):
        m.d.comb += [read.addr.eq(side.addr), write.addr.eq(side.word),
                     write.data.eq(side.write), write.en.eq(side.en & write_enable)]

    def _accumulate(self, m, weight, acc, constants, full, bank, clearing):
        """Three stages per synapse, one synapse per cycle: (0) weight word address;
        (1) the weight word is read, ``w · value`` is formed for ``P`` lanes and registered,
        the accumulator word is addressed; (2) ``acc += product`` is written. A read always
        comes one cycle after the previous synapse's write or in the same cycle
        (transparent port), so back-to-back synapses never see a stale word."""
        lanes = self.lanes
        index = Signal(neuron_layout(self._layer.in_shape))   # input neuron being added
        value = Signal(range(self._in_levels + 1))
        synapses = RangeCounter(self._geometry.synapse_sizes(), "synapse")
        s1_valid, s1_word = Signal(), Signal(range(self.words))
        s1_value = Signal(range(self._in_levels + 1))
        s2_valid, s2_word = Signal(), Signal(range(self.words))
        product = [Signal(signed(self.weight_bits + len(value) + 1), name=f"product{l}")
                   for l in range(lanes)]
        clear = Signal(range(self.words))

        m.d.sync += [s1_valid.eq(0), s2_valid.eq(s1_valid), s2_word.eq(s1_word)]
        m.d.sync += [product[l].eq(multiply(weight.data[l], s1_value, self._use_dsp))
                     for l in range(lanes)]
        m.d.comb += [acc.addr.eq(s1_word), acc.word.eq(s2_word), acc.en.eq(s2_valid)]
        m.d.comb += [acc.write[l].eq(acc.data[l] + product[l]) for l in range(lanes)]

        def present(at, counters, val):
            word, weight_word = self._geometry.synapse(at, counters)
            m.d.comb += weight.addr.eq(weight_word)
            m.d.sync += [s1_valid.eq(1), s1_word.eq(word), s1_value.eq(val)]

        def accept():
            m.d.comb += self.i.ready.eq(~full.bit_select(bank, 1))
            with m.If(self.i.valid & self.i.ready):
                with m.If(self.i.payload.end):
                    m.next = "FLUSH"
                with m.Else():
                    m.d.sync += [index.eq(self.i.payload.index),
                                 value.eq(self.i.payload.value)]
                    bounds, exists = self._geometry.synapse_bounds(self.i.payload.index)
                    with m.If(exists):       # the synapses this input reaches, no others
                        synapses.load(m, bounds)
                        present(self.i.payload.index, [first for first, _ in bounds],
                                self.i.payload.value)
                        m.next = "MAC"

        with m.FSM(name="accumulate"):
            with m.State("RESET"):
                m.d.comb += acc.addr.eq(0)
                m.d.sync += clear.eq(0)
                m.next = "CLEAR"
            with m.State("CLEAR"):   # both banks = bias
                m.d.comb += [clearing.eq(1), acc.en.eq(1), acc.word.eq(clear),
                             acc.addr.eq(clear + 1)]
                m.d.comb += [acc.write[l].eq(constants.data[l].bias) for l in range(lanes)]
                m.d.sync += clear.eq(clear + 1)
                with m.If(clear == self.words - 1):
                    m.next = "ACCEPT"
            with m.State("ACCEPT"):
                accept()
            with m.State("MAC"):     # present the next synapse
                with m.If(synapses.last()):
                    m.next = "ACCEPT"
                    accept()
                with m.Else():
                    after = synapses.next_values()
                    m.d.sync += [v.eq(a) for v, a in zip(synapses.values, after)]
                    present(index, after, value)
            with m.State("FLUSH"):   # the sample's last synapse is in stage 1
                m.next = "PASS"
            with m.State("PASS"):    # ... and is written now: hand the bank over
                pass_bank(m, full, bank, 1)
                m.next = "ACCEPT"

    def _requantize(self, m, drain, constants, full, bank):
        geometry, layer, lanes = self._geometry, self._layer, self.lanes
        bits = layer.act_bits
        acc_bits = self.accumulator_bits
        remainder = [Signal(signed(acc_bits), name=f"remainder{l}") for l in range(lanes)]
        divisor = [Signal(self.ramp_bits + bits, name=f"divisor{l}") for l in range(lanes)]
        quotient = Array(Signal(range(layer.levels + 1), name=f"q{l}") for l in range(lanes))
        emit = Signal(lanes)                 # lanes still to send
        bit = Signal(range(max(bits, 2)))
        where = Odometer([geometry.groups] + geometry.position_sizes(), "drain_at")

        m.d.comb += drain.addr.eq(drain.word)
        with m.FSM(name="drain"):
            with m.State("WAIT"):
                m.d.comb += drain.addr.eq(0)
                m.d.sync += drain.word.eq(0)
                where.load(m, [0] * len(where.values))
                with m.If(full.bit_select(bank, 1)):
                    m.next = "LOAD"
            with m.State("LOAD"):    # the word's y and constants are on the read ports
                for l in range(lanes):
                    c = constants.data[l]
                    m.d.sync += [remainder[l].eq(drain.data[l]), quotient[l].eq(0),
                                 divisor[l].eq(c.ramp << (bits - 1))]
                    m.d.comb += drain.write[l].eq(c.bias)
                m.d.comb += drain.en.eq(1)
                m.d.sync += bit.eq(bits - 1)
                m.next = "DIVIDE"
            with m.State("DIVIDE"):  # quotient bit `bit`: remainder ≥ R·2^bit ?
                taken = []
                for l in range(lanes):
                    trial = Signal(signed(max(acc_bits, self.ramp_bits + bits) + 2),
                                   name=f"trial{l}")
                    m.d.comb += trial.eq(remainder[l] - divisor[l])
                    taken.append(trial >= 0)
                    with m.If(taken[l]):
                        m.d.sync += [remainder[l].eq(trial),
                                     quotient[l].bit_select(bit, 1).eq(1)]
                    m.d.sync += divisor[l].eq(divisor[l] >> 1)
                m.d.sync += bit.eq(bit - 1)
                with m.If(bit == 0):
                    alive = [constants.data[l].alive for l in range(lanes)]
                    if self._skip_zeros:   # the last quotient bit is decided this cycle
                        sends = [alive[l] & ((quotient[l] != 0) | taken[l])
                                 for l in range(lanes)]
                    else:
                        sends = alive
                    m.d.sync += emit.eq(Cat(*sends))
                    m.next = "EMIT"
            with m.State("EMIT"):    # one activation per cycle, lowest lane first
                lane = Signal(range(lanes))
                for l in reversed(range(lanes)):
                    with m.If(emit[l]):
                        m.d.comb += lane.eq(l)
                rest = emit & (emit - 1)

                def next_word():
                    with m.If(drain.last):
                        m.next = "END"
                    with m.Else():
                        m.d.comb += drain.addr.eq(drain.word + 1)
                        m.d.sync += drain.word.eq(drain.word + 1)
                        where.step(m)
                        m.next = "LOAD"

                with m.If(emit == 0):
                    next_word()
                with m.Else():
                    m.d.comb += [self.o.valid.eq(1),
                                 self.o.payload.index.eq(self._geometry.neuron_index(where.values, lane)),
                                 self.o.payload.value.eq(quotient[lane])]
                    with m.If(self.o.ready):
                        m.d.sync += emit.eq(rest)
                        with m.If(rest == 0):
                            next_word()
            with m.State("END"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.end.eq(1)]
                with m.If(self.o.ready):
                    pass_bank(m, full, bank, 0)
                    m.next = "WAIT"

    def _readout(self, m, drain, constants, full, bank):
        lanes = self.lanes
        logits = Array(Signal(signed(self.accumulator_bits), name=f"logit{l}")
                       for l in range(lanes))
        lane = Signal(range(lanes))
        index = const_multiply(drain.word, lanes) + lane
        m.d.comb += drain.addr.eq(drain.word)
        with m.FSM(name="readout"):
            with m.State("WAIT"):
                m.d.comb += drain.addr.eq(0)
                m.d.sync += drain.word.eq(0)
                with m.If(full.bit_select(bank, 1)):
                    m.next = "LOAD"
            with m.State("LOAD"):   # take one word of logits, write the biases back
                m.d.sync += [logits[l].eq(drain.data[l]) for l in range(lanes)]
                m.d.sync += lane.eq(0)
                m.d.comb += [drain.write[l].eq(constants.data[l].bias) for l in range(lanes)]
                m.d.comb += drain.en.eq(1)
                m.next = "SEND"
            with m.State("SEND"):
                last = index == self._outputs - 1
                m.d.comb += [self.o.valid.eq(1), self.o.payload.index.eq(index),
                             self.o.payload.value.eq(logits[lane]),
                             self.o.payload.last.eq(last)]
                with m.If(self.o.ready):
                    m.d.sync += lane.eq(lane + 1)
                    with m.If(last):
                        pass_bank(m, full, bank, 0)
                        m.next = "WAIT"
                    with m.Elif(lane == lanes - 1):
                        m.d.comb += drain.addr.eq(drain.word + 1)
                        m.d.sync += drain.word.eq(drain.word + 1)
                        m.next = "LOAD"


class ActivationPoolSizes:
    """:class:`ActivationMaxPool`'s sizes as plain data."""

    def __init__(self, layer: MaxPool, *, levels: int, skip_zeros: bool = True):
        if not isinstance(layer, MaxPool):
            raise TypeError(f"ActivationMaxPool needs a MaxPool layer, not "
                            f"{type(layer).__name__}")
        self._levels = positive(levels, "Level count")
        self._skip_zeros = flag(skip_zeros, "skip_zeros")
        self._layer = layer

    @property
    def layer(self):
        return self._layer

    @property
    def inputs(self):
        return int(np.prod(self._layer.in_shape))

    @property
    def outputs(self):
        return int(np.prod(self._layer.out_shape))

    @property
    def fan_out(self):
        """Cycles per input activation (the candidates it checks)."""
        return math.prod(pool_spans(self._layer))

    @property
    def skip_zeros(self):
        return self._skip_zeros

    @property
    def state_memory_bits(self):
        return self.outputs * (self._levels.bit_length())


class ActivationMaxPool(SizedComponent, ActivationPoolSizes):
    """Max pooling over an activation stream: a running maximum per pooled neuron.

    An activation ``(c, y, x)`` checks the ``ceil(kh/sh)·ceil(kw/sw)`` pooled neurons whose window
    holds it (one per cycle; padding holds nothing, and as activations are ≥ 0 a zero pad
    never wins) and raises their maximum. The end marker starts the drain: every pooled
    neuron is read once, sent (zeros left out with ``skip_zeros``) and cleared, one per
    cycle, then the end marker. ``i`` waits during the drain, and after a reset while the
    maxima are cleared.
    """

    def members(self):
        layer = self._layer
        return {"i": In(stream.Signature(value_layout(layer.in_shape, self._levels))),
                "o": Out(stream.Signature(value_layout(layer.out_shape, self._levels)))}

    def elaborate(self, platform):
        m = Module()
        layer = self._layer
        c_out, ho, wo = layer.out_shape
        size = c_out * ho * wo
        m.submodules.best = best = memory.Memory(shape=range(self._levels + 1), depth=size,
                                                 init=[])
        write = best.write_port()
        read = best.read_port(transparent_for=[write])

        spike = Signal(self.i.payload.shape())
        offsets = Odometer(pool_spans(layer), "offset")
        word, ok, _, _ = pooled_candidate(layer, spike.index, *offsets.values)
        m.d.comb += [read.addr.eq(word), write.addr.eq(word), write.data.eq(spike.value)]
        sweep = Signal(range(size))
        at = Odometer([c_out, ho, wo], "pooled")
        with m.FSM():
            with m.State("CLEAR"):
                m.d.comb += [write.addr.eq(sweep), write.data.eq(0), write.en.eq(1)]
                m.d.sync += sweep.eq(sweep + 1)
                with m.If(sweep == size - 1):
                    m.d.sync += sweep.eq(0)
                    m.next = "ACCEPT"
            with m.State("ACCEPT"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += spike.eq(self.i.payload)
                    offsets.load(m, [0, 0])
                    with m.If(self.i.payload.end):
                        m.d.comb += read.addr.eq(0)
                        m.d.sync += sweep.eq(0)
                        at.load(m, [0, 0, 0])
                        m.next = "DRAIN"
                    with m.Else():
                        first = pooled_candidate(layer, self.i.payload.index, 0, 0)[0]
                        m.d.comb += read.addr.eq(first)
                        m.next = "CHECK"
            with m.State("CHECK"):   # read.data: the candidate's maximum so far
                m.d.comb += write.en.eq(ok & (spike.value > read.data))
                after = offsets.next_values()
                offsets.load(m, after)
                after_word = pooled_candidate(layer, spike.index, *after)[0]
                m.d.comb += read.addr.eq(after_word)
                with m.If(offsets.last()):
                    m.next = "ACCEPT"
            with m.State("DRAIN"):   # read.data: the maximum of pooled neuron `sweep`
                keep = (read.data != 0) if self._skip_zeros else Const(1)
                c, y, x = at.values
                m.d.comb += [self.o.valid.eq(keep), self.o.payload.value.eq(read.data),
                             self.o.payload.index.c.eq(c), self.o.payload.index.y.eq(y),
                             self.o.payload.index.x.eq(x),
                             read.addr.eq(sweep), write.addr.eq(sweep), write.data.eq(0)]
                with m.If(~keep | self.o.ready):
                    m.d.comb += [write.en.eq(1), read.addr.eq(sweep + 1)]
                    m.d.sync += sweep.eq(sweep + 1)
                    at.step(m)
                    with m.If(sweep == size - 1):
                        m.d.sync += sweep.eq(0)
                        m.next = "END"
            with m.State("END"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.end.eq(1)]
                with m.If(self.o.ready):
                    m.next = "ACCEPT"
        return m
