"""The B1 neuron dynamics for one synaptic layer, shared by the dense and conv cores.

A core keeps ``words`` state words of ``P`` lanes (one lane per output channel of a group,
``groups = ceil(channels / P)``): the currents ``I``, two banks of membranes ``V`` and the
per-neuron constants, all in memories. A subclass says which words an input spike reaches
and with which weight word (:meth:`NeuronCore.synapse`, stepped by nested counters) and how
a word and lane name an output neuron (:meth:`NeuronCore.neuron_index`).
"""

import functools

import numpy as np
from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from onespike.hdl.encoder import positive
from onespike.hdl.streams import (index_shape, logit_layout, neuron_layout, pass_bank,
                                  refuse, spike_layout)
from onespike.ir import LayerWidths, signed_bits

__all__ = ["NeuronCore", "Odometer"]


class Odometer:
    """Nested counters (the last one fastest) that step together; ``values`` are Signals."""

    def __init__(self, sizes, name):
        self.sizes = list(sizes)
        self.values = [Signal(range(max(n, 1)), name=f"{name}{i}")
                       for i, n in enumerate(self.sizes)]

    def last(self):
        return Cat(*[v == n - 1 for v, n in zip(self.values, self.sizes)]).all()

    def next_values(self):
        """The values after one step (wrapping), as expressions."""
        out, carry = [], 1
        for v, n in reversed(list(zip(self.values, self.sizes))):
            wrap = carry & (v == n - 1)
            out.append(Mux(carry, Mux(wrap, 0, v + 1), v))
            carry = wrap
        return list(reversed(out))

    def step(self, m):
        m.d.sync += [v.eq(n) for v, n in zip(self.values, self.next_values())]

    def load(self, m, values):
        m.d.sync += [v.eq(x) for v, x in zip(self.values, values)]


class _Side:
    """What one phase does to a membrane bank: the word on the read port is ``word`` (a
    register); ``addr`` is the word it reads next (data in the next cycle); ``write``/``en``
    write word ``word``."""

    def __init__(self, name, layout, words):
        self.word = Signal(range(words), name=f"{name}_word")
        self.addr = Signal(range(words), name=f"{name}_addr")
        self.data = Signal(layout, name=f"{name}_v")
        self.write = Signal(layout, name=f"{name}_v_next")
        self.en = Signal(name=f"{name}_v_en")
        self.last = self.word == words - 1


class NeuronCore(wiring.Component):
    """Phase 1 (integration, into the free bank): each input spike on ``i`` adds its weight
    words into ``I`` (one word per cycle, :attr:`fan_out` cycles); each end-of-step marker
    adds ``I`` into ``V`` (one word per cycle). After ``in_levels`` markers the bank goes to
    phase 2, ``I`` is zero again, and the next sample integrates into the other bank.

    Phase 2, concurrently, on the full bank:

    * hidden layer (firing): in step ``k = 0..A-1`` each word adds ``R`` to ``V``
      (``k > 0``) and compares with ``A·R``; a neuron fires in the step where it first
      reaches the threshold (it was below in step ``k - 1``). Crossings are sent on ``o``
      one per cycle (``step = k``), then the step's end marker. The last step writes the
      biases back, which frees the bank.
    * readout: the membranes are sent on ``o`` as logits (``last`` on the final one) and
      replaced by the biases.

    Backpressure on ``o`` stalls phase 2 only. After a reset the core rewrites all state
    (``words + 1`` cycles) before ``i`` is ready.
    """

    def __init__(self, layer, *, in_levels: int, widths: LayerWidths, lanes: int):
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            refuse(self, ValueError(f"Lane count must be a positive integer, not {lanes!r}"))
        self._channels = layer.weight.shape[0]
        if lanes > self._channels:
            refuse(self, ValueError(f"Lane count {lanes} exceeds the layer's "
                                    f"{self._channels} channels"))
        self._layer = layer
        self._lanes = lanes
        self._in_levels = positive(in_levels, "Input level count")
        self._widths = widths
        self._outputs = int(np.prod(layer.out_shape))
        o = stream.Signature(logit_layout(self._outputs, widths.membrane_bits)
                             if layer.is_readout else spike_layout(layer.out_shape,
                                                                   layer.levels))
        super().__init__({
            "i": In(stream.Signature(spike_layout(layer.in_shape, in_levels))),
            "o": Out(o),
        })

    # -- what a subclass provides ----------------------------------------------------
    positions = 1                       # output positions per channel (state words / groups)

    def weight_words(self) -> np.ndarray:
        """``(depth, lanes)`` weight memory contents."""
        raise NotImplementedError

    def synapse_counters(self) -> list:
        """Sizes of the nested counters that step through one spike's synapses."""
        raise NotImplementedError

    def synapse(self, index, counters):
        """``(state word, weight word, valid)`` for input neuron ``index`` at ``counters``."""
        raise NotImplementedError

    def neuron_index(self, word_counters, lane):
        """The ``o`` index of lane ``lane`` of the state word at ``word_counters``
        (``[group, *position]``)."""
        raise NotImplementedError

    def position_sizes(self) -> list:
        return []

    def neuron_constants(self):
        """``(bias, ramp)`` per state word and lane, ``(words, lanes)`` each."""
        raise NotImplementedError

    # -- sizes -------------------------------------------------------------------------
    @property
    def inputs(self):
        """Incoming neurons (the input spike map's size)."""
        return int(np.prod(self._layer.in_shape))

    @property
    def lanes(self):
        return self._lanes

    @property
    def groups(self):
        return -(-self._channels // self._lanes)

    @property
    def words(self):
        return self.groups * self.positions

    @property
    def fan_out(self):
        """Cycles of phase 1 per input spike."""
        return int(np.prod(self.synapse_counters()))

    @property
    def weight_bits(self):
        return signed_bits(int(np.abs(self._layer.weight).max(initial=0)))

    @functools.cached_property
    def weight_contents(self) -> np.ndarray:
        """:meth:`weight_words`, computed once."""
        return self.weight_words()

    @property
    def weight_memory_bits(self):
        return len(self.weight_contents) * self.lanes * self.weight_bits

    @property
    def state_memory_bits(self):
        """Bits of the currents plus both membrane banks."""
        return self.words * self.lanes * (self._widths.current_bits
                                          + 2 * self._widths.membrane_bits)

    def _channel_lanes(self, values):
        """Per-channel values as ``(groups, lanes)``, zero in the padding lanes."""
        padded = np.zeros(self.groups * self.lanes, dtype=np.int64)
        padded[:len(values)] = values
        return padded.reshape(self.groups, self.lanes)

    # -- hardware ----------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        layer, lanes, words = self._layer, self._lanes, self.words
        membrane = signed(self._widths.membrane_bits)
        mem_word = data.ArrayLayout(membrane, lanes)

        contents = self.weight_contents
        m.submodules.weights = weights = memory.Memory(
            shape=data.ArrayLayout(signed(self.weight_bits), lanes), depth=len(contents),
            init=contents.tolist(), attrs={"onespike_role": "weights"})  # for board mapping
        weight = weights.read_port()

        m.submodules.current = currents = memory.Memory(
            shape=data.ArrayLayout(signed(self._widths.current_bits), lanes), depth=words,
            init=[])
        current_write = currents.write_port()
        current = currents.read_port(transparent_for=[current_write])

        bias, ramp = self.neuron_constants()
        alive = np.zeros((words, lanes), dtype=np.int64)
        alive.reshape(self.groups, -1, lanes)[:] = \
            self._channel_lanes(np.ones(self._channels))[:, None, :]
        neuron = data.StructLayout({"bias": membrane, "ramp": membrane, "threshold": membrane,
                                    "alive": 1})
        m.submodules.constants = constants = memory.Memory(
            shape=data.ArrayLayout(neuron, lanes), depth=words,
            init=[[{"bias": b, "ramp": r, "threshold": layer.levels * r, "alive": a}
                   for b, r, a in zip(*word)]
                  for word in zip(bias.tolist(), ramp.tolist(), alive.tolist())])

        full = Signal(2)                     # bank belongs to phase 2
        bank = {"integrate": Signal(), "fire": Signal()}
        side = {name: _Side(name, mem_word, words) for name in bank}
        clearing = Signal()                  # phase 1 writes both banks
        for b in range(2):
            m.submodules[f"membrane{b}"] = bank_memory = memory.Memory(
                shape=mem_word, depth=words, init=bias.tolist())
            write = bank_memory.write_port()
            read = bank_memory.read_port(transparent_for=[write])
            with m.If(full[b]):
                self._connect(m, read, write, side["fire"], bank["fire"] == b)
            with m.Else():
                self._connect(m, read, write, side["integrate"],
                              (bank["integrate"] == b) | clearing)
            for name in bank:
                with m.If(bank[name] == b):
                    m.d.comb += side[name].data.eq(read.data)

        ints = side["integrate"]
        ints_constants = constants.read_port()
        m.d.comb += ints_constants.addr.eq(ints.addr)
        self._integration(m, weight, current, current_write, ints, ints_constants, full,
                          bank["integrate"], clearing)
        fires_constants = constants.read_port()
        m.d.comb += fires_constants.addr.eq(side["fire"].addr)
        phase2 = self._readout if layer.is_readout else self._firing
        phase2(m, side["fire"], fires_constants, full, bank["fire"])
        return m

    @staticmethod
    def _connect(m, read, write, side, write_enable):
        m.d.comb += [read.addr.eq(side.addr), write.addr.eq(side.word),
                     write.data.eq(side.write), write.en.eq(side.en & write_enable)]

    def _integration(self, m, weight, current, current_write, ints, constants, full, bank,
                     clearing):
        lanes = self._lanes
        spike = Signal(neuron_layout(self._layer.in_shape))   # input neuron being added
        synapses = Odometer(self.synapse_counters(), "synapse")
        target, target_valid = Signal(range(self.words)), Signal()   # I word on the port
        ticks = Signal(range(self._in_levels))
        m.d.comb += [current.addr.eq(ints.addr), current_write.addr.eq(ints.word)]

        def present(index, counters):
            word, weight_word, valid = self.synapse(index, counters)
            m.d.comb += [current.addr.eq(word), weight.addr.eq(weight_word)]
            m.d.sync += [target.eq(word), target_valid.eq(valid)]

        def sweep():
            """Present the sweep's next state word on the read ports."""
            with m.If(~ints.last):
                m.d.comb += ints.addr.eq(ints.word + 1)
                m.d.sync += ints.word.eq(ints.word + 1)

        def accept():
            m.d.comb += self.i.ready.eq(~full.bit_select(bank, 1))
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += ints.word.eq(0)
                m.d.comb += ints.addr.eq(0)
                with m.If(self.i.payload.end):
                    m.next = "STEP"
                with m.Else():
                    m.d.sync += spike.eq(self.i.payload.index)
                    synapses.load(m, [0] * len(synapses.values))
                    present(self.i.payload.index, [0] * len(synapses.values))
                    m.next = "ADD"

        with m.FSM(name="integration"):
            with m.State("RESET"):
                m.d.sync += ints.word.eq(0)
                m.next = "CLEAR"
            with m.State("CLEAR"):   # V = bias in both banks, I = 0
                m.d.comb += [clearing.eq(1), ints.en.eq(1), current_write.en.eq(1)]
                m.d.comb += [ints.write[l].eq(constants.data[l].bias) for l in range(lanes)]
                sweep()
                with m.If(ints.last):
                    m.next = "INTEGRATE"
            with m.State("INTEGRATE"):
                accept()
            with m.State("ADD"):     # I += w for the synapse on the read ports
                m.d.comb += [current_write.addr.eq(target), current_write.en.eq(target_valid)]
                m.d.comb += [current_write.data[l].eq(current.data[l] + weight.data[l])
                             for l in range(lanes)]
                with m.If(synapses.last()):
                    m.next = "INTEGRATE"
                    accept()
                with m.Else():
                    after = synapses.next_values()
                    synapses.load(m, after)
                    present(spike, after)
            with m.State("STEP"):    # V += I; the window's last step also clears I
                m.d.comb += ints.en.eq(1)
                m.d.comb += [ints.write[l].eq(ints.data[l] + current.data[l])
                             for l in range(lanes)]
                window_done = ticks == self._in_levels - 1
                m.d.comb += current_write.en.eq(window_done)
                sweep()
                with m.If(ints.last):
                    m.next = "INTEGRATE"
                    with m.If(window_done):
                        m.d.sync += ticks.eq(0)
                        pass_bank(m, full, bank, 1)
                    with m.Else():
                        m.d.sync += ticks.eq(ticks + 1)
                        accept()

    def _firing(self, m, fire, constants, full, bank):
        layer, lanes = self._layer, self._lanes
        step = Signal(index_shape(layer.levels))
        pending = Signal(lanes)
        last_step = step == layer.levels - 1
        where = Odometer([self.groups] + self.position_sizes(), "fire_at")

        def next_word():
            m.d.sync += fire.word.eq(fire.word + 1)
            where.step(m)

        def first_word():
            m.d.sync += fire.word.eq(0)
            where.load(m, [0] * len(where.values))

        m.d.comb += fire.addr.eq(Mux(fire.last, 0, fire.word + 1))
        with m.FSM(name="firing"):
            with m.State("WAIT"):
                m.d.comb += fire.addr.eq(0)
                first_word()
                with m.If(full.bit_select(bank, 1)):
                    m.next = "FIRE"
            with m.State("FIRE"):   # ramp and compare one word, write it back
                crossings = []
                for l in range(lanes):
                    v, c = fire.data[l], constants.data[l]
                    raised = Signal(fire.data[l].shape(), name=f"raised{l}")
                    m.d.comb += raised.eq(v + Mux(step == 0, 0, c.ramp))
                    crossings.append((raised >= c.threshold) & c.alive
                                     & ((step == 0) | (v < c.threshold)))
                    m.d.comb += fire.write[l].eq(Mux(last_step, c.bias, raised))
                m.d.comb += fire.en.eq(1)
                m.d.sync += pending.eq(Cat(*crossings))
                with m.If(Cat(*crossings).any()):
                    m.next = "EMIT"
                with m.Elif(fire.last):
                    m.next = "STEP_END"
                with m.Else():
                    next_word()
            with m.State("EMIT"):   # one spike per cycle, lowest lane first
                lane = Signal(range(lanes))
                for l in reversed(range(lanes)):
                    with m.If(pending[l]):
                        m.d.comb += lane.eq(l)
                m.d.comb += [self.o.valid.eq(1),
                             self.o.payload.index.eq(self.neuron_index(where.values, lane)),
                             self.o.payload.step.eq(step)]
                rest = pending & (pending - 1)
                with m.If(self.o.ready):
                    m.d.sync += pending.eq(rest)
                    with m.If(rest == 0):
                        with m.If(fire.last):
                            m.next = "STEP_END"
                        with m.Else():
                            next_word()
                            m.next = "FIRE"
            with m.State("STEP_END"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.end.eq(1),
                             self.o.payload.step.eq(step), fire.addr.eq(0)]
                first_word()
                with m.If(self.o.ready):
                    m.d.sync += step.eq(step + 1)
                    m.next = "FIRE"
                    with m.If(last_step):
                        m.d.sync += step.eq(0)
                        pass_bank(m, full, bank, 0)
                        m.next = "WAIT"

    def _readout(self, m, fire, constants, full, bank):
        lanes = self._lanes
        logits = Array(Signal(fire.data[l].shape(), name=f"logit{l}") for l in range(lanes))
        lane = Signal(range(lanes))
        index = fire.word * lanes + lane
        m.d.comb += fire.addr.eq(Mux(fire.last, 0, fire.word + 1))
        with m.FSM(name="readout"):
            with m.State("WAIT"):
                m.d.comb += fire.addr.eq(0)
                m.d.sync += fire.word.eq(0)
                with m.If(full.bit_select(bank, 1)):
                    m.next = "LOAD"
            with m.State("LOAD"):   # take one word of logits, write the biases back
                m.d.sync += [logits[l].eq(fire.data[l]) for l in range(lanes)]
                m.d.sync += lane.eq(0)
                m.d.comb += [fire.write[l].eq(constants.data[l].bias) for l in range(lanes)]
                m.d.comb += fire.en.eq(1)
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
                        m.d.sync += fire.word.eq(fire.word + 1)
                        m.next = "LOAD"
