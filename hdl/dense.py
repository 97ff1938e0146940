"""Dense layer core: the B1 neuron dynamics for ``N`` neurons on ``P`` lanes."""

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
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


class DenseCore(wiring.Component):
    """One fully connected layer of the TTFS network.

    Phase 1 (integration): each input spike on ``i`` reads its weight row (``P`` lanes per
    cycle, ``ceil(N/P)`` cycles) and adds it into the currents ``I``; each end-of-step marker
    adds ``I`` into the membranes ``V`` (``ceil(N/P)`` cycles). After ``in_levels`` markers:

    * hidden layer — phase 2 (firing): for ``k = 0..A-1`` every group of ``P`` neurons adds
      ``R`` to ``V`` (``k > 0``) and compares with ``A·R``; crossings are sent on ``o`` one per
      cycle (``step = k``), then the step's end marker.
    * readout — the ``N`` membranes are sent on ``o`` as logits, ``last`` on the final one.

    Then ``V`` reloads the biases and the next sample is accepted. Backpressure on ``o``
    stalls the sweep; nothing is dropped.
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

    def elaborate(self, platform):
        m = Module()
        layer, lanes, groups = self._layer, self._lanes, self.groups
        padded = groups * lanes
        readout = layer.is_readout

        rows = np.zeros((self._inputs, padded), dtype=np.int64)
        rows[:, :self._outputs] = self._weights
        word = data.ArrayLayout(signed(self.weight_bits), lanes)
        m.submodules.weights = weights = memory.Memory(
            shape=word, depth=self._inputs * groups,
            init=[list(map(int, r)) for r in rows.reshape(-1, lanes)])
        read = weights.read_port()

        cur, mem = signed(self._widths.current_bits), signed(self._widths.membrane_bits)
        bias = np.zeros(padded, dtype=np.int64)
        bias[:self._outputs] = layer.bias
        current = [Signal(cur, name=f"i{n}") for n in range(padded)]
        membrane = [Signal(mem, name=f"v{n}", init=int(bias[n])) for n in range(padded)]

        def lane_select(signals, group, lane):
            return Array(signals[g * lanes + lane] for g in range(groups))[group]

        def lane_write(domain, targets, group, lane, value):
            with m.Switch(group):
                for g in range(groups):
                    with m.Case(g):
                        domain += targets[g * lanes + lane].eq(value)

        group = Signal(range(groups + 1))
        row = Signal(index_shape(self._inputs))
        ticks = Signal(range(self._in_levels + 1))
        reloading = Signal()

        with m.FSM():
            with m.State("INTEGRATE"):
                m.d.comb += self.i.ready.eq(1)
                m.d.comb += read.addr.eq(self.i.payload.index * groups)
                with m.If(self.i.valid):
                    m.d.sync += group.eq(0)
                    with m.If(self.i.payload.end):
                        m.next = "STEP"
                    with m.Else():
                        m.d.sync += row.eq(self.i.payload.index)
                        m.next = "ADD"
            with m.State("ADD"):  # read.data holds the weights of (row, group)
                m.d.comb += read.addr.eq(row * groups + group + 1)
                for lane in range(lanes):
                    total = lane_select(current, group, lane) + read.data[lane]
                    lane_write(m.d.sync, current, group, lane, total)
                m.d.sync += group.eq(group + 1)
                with m.If(group == groups - 1):
                    m.next = "INTEGRATE"
            with m.State("STEP"):  # V += I, one group per cycle
                for lane in range(lanes):
                    total = lane_select(membrane, group, lane) + \
                        lane_select(current, group, lane)
                    lane_write(m.d.sync, membrane, group, lane, total)
                m.d.sync += group.eq(group + 1)
                with m.If(group == groups - 1):
                    m.d.sync += [group.eq(0), ticks.eq(ticks + 1)]
                    with m.If(ticks == self._in_levels - 1):
                        m.d.sync += ticks.eq(0)
                        m.next = "OUTPUT" if readout else "FIRE"
                    with m.Else():
                        m.next = "INTEGRATE"
            if readout:
                self._readout_states(m, membrane)
            else:
                self._firing_states(m, membrane, group)
            with m.State("RELOAD"):
                m.d.comb += reloading.eq(1)
                m.next = "INTEGRATE"
        with m.If(reloading):
            m.d.sync += [v.eq(int(b)) for v, b in zip(membrane, bias)]
            m.d.sync += [c.eq(0) for c in current]
        return m

    def _readout_states(self, m, membrane):
        index = Signal(index_shape(self._outputs))
        with m.State("OUTPUT"):
            m.d.comb += [self.o.valid.eq(1),
                         self.o.payload.index.eq(index),
                         self.o.payload.value.eq(Array(membrane[:self._outputs])[index]),
                         self.o.payload.last.eq(index == self._outputs - 1)]
            with m.If(self.o.ready):
                m.d.sync += index.eq(index + 1)
                with m.If(index == self._outputs - 1):
                    m.d.sync += index.eq(0)
                    m.next = "RELOAD"

    def _firing_states(self, m, membrane, group):
        layer, lanes, groups = self._layer, self._lanes, self.groups
        padded = groups * lanes
        mem = signed(self._widths.membrane_bits)
        ramp = np.zeros(padded, dtype=np.int64)
        ramp[:self._outputs] = layer.ramp
        threshold = layer.levels * ramp
        fired = Signal(padded)
        pending = Signal(lanes)
        step = Signal(index_shape(layer.levels))

        def select(values, lane, shape=mem):  # per-neuron constants of the current group
            return Array(Const(int(values[g * lanes + lane]), shape)
                         for g in range(groups))[group]

        with m.State("FIRE"):  # ramp and compare one group, collect its crossings
            crossings = []
            for lane in range(lanes):
                v = Array(membrane[g * lanes + lane] for g in range(groups))[group]
                raised = Signal(mem, name=f"raised{lane}")
                m.d.comb += raised.eq(v + Mux(step != 0, select(ramp, lane), 0))
                was = Array(fired[g * lanes + lane] for g in range(groups))[group]
                alive = select(np.arange(padded) < self._outputs, lane, 1)
                cross = (raised >= select(threshold, lane)) & ~was & alive
                crossings.append(cross)
                with m.Switch(group):
                    for g in range(groups):
                        with m.Case(g):
                            m.d.sync += [membrane[g * lanes + lane].eq(raised),
                                         fired[g * lanes + lane].eq(was | cross)]
            m.d.sync += pending.eq(Cat(*crossings))
            m.next = "EMIT"
        with m.State("EMIT"):  # one spike per cycle, lowest lane first
            lane = Signal(range(lanes))
            for l in reversed(range(lanes)):
                with m.If(pending[l]):
                    m.d.comb += lane.eq(l)
            m.d.comb += [self.o.payload.index.eq(group * lanes + lane),
                         self.o.payload.step.eq(step)]
            with m.If(pending == 0):
                m.d.sync += group.eq(group + 1)
                with m.If(group == groups - 1):
                    m.d.sync += group.eq(0)
                    m.next = "STEP_END"
                with m.Else():
                    m.next = "FIRE"
            with m.Else():
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    m.d.sync += pending.eq(pending & (pending - 1))
        with m.State("STEP_END"):
            m.d.comb += [self.o.valid.eq(1), self.o.payload.end.eq(1),
                         self.o.payload.step.eq(step)]
            with m.If(self.o.ready):
                m.d.sync += step.eq(step + 1)
                with m.If(step == layer.levels - 1):
                    m.d.sync += [step.eq(0), fired.eq(0)]
                    m.next = "RELOAD"
                with m.Else():
                    m.next = "FIRE"
