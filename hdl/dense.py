"""Dense layer core: the B1 neuron dynamics for ``N`` neurons on ``P`` lanes."""

import numpy as np
from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from onespike.hdl.encoder import positive
from onespike.hdl.streams import index_shape, logit_layout, refuse, spike_layout
from onespike.ir import Dense, LayerWidths, signed_bits

__all__ = ["DenseCore", "unpooled_weights"]


def unpooled_weights(layer: Dense) -> np.ndarray:
    """``(inputs, outputs)`` weights with one row per *incoming* neuron (C-order index of
    ``layer.in_shape``): flattening is the identity, and sum pooling maps each incoming
    neuron to the row of its pooled input (rows cut off by pooling are zero)."""
    weight = layer.weight.T
    if layer.pool == 1:
        return weight
    c, h, w = layer.in_shape
    k = layer.pool
    _, hp, wp = layer.pooled_shape
    rows = np.zeros((c, h, w, weight.shape[1]), dtype=np.int64)
    pooled = weight.reshape(c, hp, wp, -1)
    rows[:, :hp * k, :wp * k] = np.repeat(np.repeat(pooled, k, axis=1), k, axis=2)
    return rows.reshape(c * h * w, -1)


def _flag(m, flags, bank, value):
    """Set ``flags[bank]`` (a 2-bit signal, ``bank`` a 1-bit signal) to ``value``."""
    with m.If(bank):
        m.d.sync += flags[1].eq(value)
    with m.Else():
        m.d.sync += flags[0].eq(value)


class _Side:
    """What one phase does to a membrane bank: the word on the read port belongs to group
    ``group`` (a register); ``addr`` is the group it reads next (data in the next cycle);
    ``write``/``en`` write group ``group``."""

    def __init__(self, name, word, groups):
        self.group = Signal(range(groups), name=f"{name}_group")
        self.addr = Signal(range(groups), name=f"{name}_addr")
        self.data = Signal(word, name=f"{name}_v")
        self.write = Signal(word, name=f"{name}_v_next")
        self.en = Signal(name=f"{name}_v_en")
        self.last = self.group == groups - 1


class DenseCore(wiring.Component):
    """One fully connected layer of the TTFS network.

    State lives in memories of ``groups = ceil(N/P)`` words of ``P`` lanes (synthesis puts
    small ones in registers, large ones in block RAM): the weights (one row of ``groups``
    words per input neuron), the currents ``I``, and two banks of membranes ``V``.

    Phase 1 (integration, into the free bank): each input spike on ``i`` adds its weight
    row into ``I``, each end-of-step marker adds ``I`` into ``V``, one word per cycle and
    back to back (``groups`` cycles per transfer). After ``in_levels`` markers the bank goes
    to phase 2, ``I`` is zero again, and the next sample integrates into the other bank.

    Phase 2, concurrently, on the full bank:

    * hidden layer (firing): in step ``k = 0..A-1`` each word adds ``R`` to ``V``
      (``k > 0``) and compares with ``A·R``; a neuron fires in the step where it first
      reaches the threshold (it was below in step ``k - 1``). Crossings are sent on ``o``
      one per cycle (``step = k``), then the step's end marker. The last step writes the
      biases back, which frees the bank.
    * readout: the ``N`` membranes are sent on ``o`` as logits (``last`` on the final one)
      and replaced by the biases.

    Backpressure on ``o`` stalls phase 2 only. After a reset the core rewrites all state
    (``groups + 1`` cycles) before ``i`` is ready.
    """

    def __init__(self, layer: Dense, *, in_levels: int, widths: LayerWidths, lanes: int):
        if not isinstance(layer, Dense):
            refuse(self, TypeError(f"DenseCore needs a Dense layer, not "
                                   f"{type(layer).__name__}"))
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            refuse(self, ValueError(f"Lane count must be a positive integer, not {lanes!r}"))
        self._outputs = layer.weight.shape[0]
        if lanes > self._outputs:
            refuse(self, ValueError(f"Lane count {lanes} exceeds the layer's {self._outputs} "
                                    f"neurons"))
        self._layer = layer
        self._lanes = lanes
        self._in_levels = positive(in_levels, "Input level count")
        self._widths = widths
        self._weights = unpooled_weights(layer)
        self._inputs = self._weights.shape[0]
        o = stream.Signature(logit_layout(self._outputs, widths.membrane_bits)
                             if layer.is_readout else spike_layout(self._outputs, layer.levels))
        super().__init__({
            "i": In(stream.Signature(spike_layout(self._inputs, in_levels))),
            "o": Out(o),
        })

    @property
    def inputs(self):
        """Incoming neurons (rows of the weight memory, one per input spike index)."""
        return self._inputs

    @property
    def lanes(self):
        return self._lanes

    @property
    def groups(self):
        return -(-self._outputs // self._lanes)

    @property
    def weight_bits(self):
        return signed_bits(int(np.abs(self._weights).max(initial=0)))

    @property
    def weight_memory_bits(self):
        return self._inputs * self.groups * self.lanes * self.weight_bits

    @property
    def state_memory_bits(self):
        """Bits of the currents plus both membrane banks."""
        return self.groups * self.lanes * (self._widths.current_bits
                                           + 2 * self._widths.membrane_bits)

    def _words(self, values):
        padded = np.zeros(self.groups * self.lanes, dtype=np.int64)
        padded[:len(values)] = values
        return padded.reshape(self.groups, self.lanes).tolist()

    def elaborate(self, platform):
        m = Module()
        layer, lanes, groups = self._layer, self._lanes, self.groups
        membrane = signed(self._widths.membrane_bits)
        mem_word = data.ArrayLayout(membrane, lanes)

        rows = np.zeros((self._inputs, groups * lanes), dtype=np.int64)
        rows[:, :self._outputs] = self._weights
        m.submodules.weights = weights = memory.Memory(
            shape=data.ArrayLayout(signed(self.weight_bits), lanes),
            depth=self._inputs * groups, init=rows.reshape(-1, lanes).tolist())
        weight = weights.read_port()

        m.submodules.current = currents = memory.Memory(
            shape=data.ArrayLayout(signed(self._widths.current_bits), lanes), depth=groups,
            init=[])
        current_write = currents.write_port()
        current = currents.read_port(transparent_for=[current_write])

        ramp = np.zeros(self._outputs, dtype=np.int64) if layer.is_readout else layer.ramp
        neuron = data.StructLayout({"bias": membrane, "ramp": membrane, "threshold": membrane,
                                    "alive": 1})
        m.submodules.constants = constants = memory.Memory(
            shape=data.ArrayLayout(neuron, lanes), depth=groups,
            init=[[{"bias": b, "ramp": r, "threshold": layer.levels * r, "alive": a}
                   for b, r, a in zip(*word)]
                  for word in zip(self._words(layer.bias), self._words(ramp),
                                  self._words(np.ones(self._outputs, dtype=np.int64)))])

        full = Signal(2)                     # bank belongs to phase 2
        bank = {"integrate": Signal(), "fire": Signal()}
        side = {name: _Side(name, mem_word, groups) for name in bank}
        clearing = Signal()                  # phase 1 writes both banks
        for b in range(2):
            m.submodules[f"membrane{b}"] = memory_ = memory.Memory(
                shape=mem_word, depth=groups, init=self._words(layer.bias))
            write = memory_.write_port()
            read = memory_.read_port(transparent_for=[write])
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
        m.d.comb += [ints_constants.addr.eq(ints.addr), current.addr.eq(ints.addr),
                     current_write.addr.eq(ints.group)]
        self._integration(m, weight, current, current_write, ints, ints_constants, full,
                          bank["integrate"], clearing)
        fires_constants = constants.read_port()
        m.d.comb += fires_constants.addr.eq(side["fire"].addr)
        phase2 = self._readout if layer.is_readout else self._firing
        phase2(m, side["fire"], fires_constants, full, bank["fire"])
        return m

    @staticmethod
    def _connect(m, read, write, side, write_enable):
        m.d.comb += [read.addr.eq(side.addr), write.addr.eq(side.group),
                     write.data.eq(side.write), write.en.eq(side.en & write_enable)]

    def _integration(self, m, weight, current, current_write, ints, constants, full, bank,
                     clearing):
        lanes, groups = self._lanes, self.groups
        row = Signal(index_shape(self._inputs))
        ticks = Signal(range(self._in_levels))
        m.d.comb += weight.addr.eq(row * groups + ints.addr)

        def advance():
            """Present the sweep's next word on the read ports."""
            with m.If(~ints.last):
                m.d.comb += ints.addr.eq(ints.group + 1)
                m.d.sync += ints.group.eq(ints.group + 1)

        def accept():
            m.d.comb += self.i.ready.eq(~full.bit_select(bank, 1))
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += ints.group.eq(0)
                m.d.comb += [ints.addr.eq(0), weight.addr.eq(self.i.payload.index * groups)]
                with m.If(self.i.payload.end):
                    m.next = "STEP"
                with m.Else():
                    m.d.sync += row.eq(self.i.payload.index)
                    m.next = "ADD"

        with m.FSM(name="integration"):
            with m.State("RESET"):
                m.d.sync += ints.group.eq(0)
                m.next = "CLEAR"
            with m.State("CLEAR"):   # V = bias in both banks, I = 0
                m.d.comb += [clearing.eq(1), ints.en.eq(1), current_write.en.eq(1)]
                m.d.comb += [ints.write[l].eq(constants.data[l].bias) for l in range(lanes)]
                advance()
                with m.If(ints.last):
                    m.next = "INTEGRATE"
            with m.State("INTEGRATE"):
                accept()
            with m.State("ADD"):     # I += w for the word on the read ports
                m.d.comb += current_write.en.eq(1)
                m.d.comb += [current_write.data[l].eq(current.data[l] + weight.data[l])
                             for l in range(lanes)]
                advance()
                with m.If(ints.last):
                    m.next = "INTEGRATE"
                    accept()
            with m.State("STEP"):    # V += I; the window's last step also clears I
                m.d.comb += ints.en.eq(1)
                m.d.comb += [ints.write[l].eq(ints.data[l] + current.data[l])
                             for l in range(lanes)]
                window_done = ticks == self._in_levels - 1
                m.d.comb += current_write.en.eq(window_done)
                advance()
                with m.If(ints.last):
                    m.next = "INTEGRATE"
                    with m.If(window_done):
                        m.d.sync += [ticks.eq(0), bank.eq(~bank)]
                        _flag(m, full, bank, 1)
                    with m.Else():
                        m.d.sync += ticks.eq(ticks + 1)
                        accept()

    def _next_group(self, m, fire):
        """Present the word after ``fire.group`` (wrapping to 0) on the read ports."""
        m.d.comb += fire.addr.eq(Mux(fire.last, 0, fire.group + 1))

    def _release(self, m, full, bank):
        _flag(m, full, bank, 0)
        m.d.sync += bank.eq(~bank)

    def _firing(self, m, fire, constants, full, bank):
        layer, lanes = self._layer, self._lanes
        step = Signal(index_shape(layer.levels))
        pending = Signal(lanes)
        last_step = step == layer.levels - 1
        with m.FSM(name="firing"):
            with m.State("WAIT"):
                m.d.sync += fire.group.eq(0)
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
                self._next_group(m, fire)
                with m.If(Cat(*crossings).any()):
                    m.next = "EMIT"
                with m.Elif(fire.last):
                    m.next = "STEP_END"
                with m.Else():
                    m.d.sync += fire.group.eq(fire.group + 1)
            with m.State("EMIT"):   # one spike per cycle, lowest lane first
                lane = Signal(range(lanes))
                for l in reversed(range(lanes)):
                    with m.If(pending[l]):
                        m.d.comb += lane.eq(l)
                m.d.comb += [self.o.valid.eq(1),
                             self.o.payload.index.eq(fire.group * lanes + lane),
                             self.o.payload.step.eq(step)]
                self._next_group(m, fire)
                rest = pending & (pending - 1)
                with m.If(self.o.ready):
                    m.d.sync += pending.eq(rest)
                    with m.If(rest == 0):
                        with m.If(fire.last):
                            m.next = "STEP_END"
                        with m.Else():
                            m.d.sync += fire.group.eq(fire.group + 1)
                            m.next = "FIRE"
            with m.State("STEP_END"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.end.eq(1),
                             self.o.payload.step.eq(step), fire.addr.eq(0)]
                m.d.sync += fire.group.eq(0)
                with m.If(self.o.ready):
                    m.d.sync += step.eq(step + 1)
                    m.next = "FIRE"
                    with m.If(last_step):
                        m.d.sync += step.eq(0)
                        self._release(m, full, bank)
                        m.next = "WAIT"

    def _readout(self, m, fire, constants, full, bank):
        lanes = self._lanes
        logits = Array(Signal(fire.data[l].shape(), name=f"logit{l}") for l in range(lanes))
        lane = Signal(range(lanes))
        index = fire.group * lanes + lane
        with m.FSM(name="readout"):
            with m.State("WAIT"):
                m.d.sync += fire.group.eq(0)
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
                self._next_group(m, fire)
                with m.If(self.o.ready):
                    m.d.sync += lane.eq(lane + 1)
                    with m.If(last):
                        self._release(m, full, bank)
                        m.next = "WAIT"
                    with m.Elif(lane == lanes - 1):
                        m.d.sync += fire.group.eq(fire.group + 1)
                        m.next = "LOAD"
