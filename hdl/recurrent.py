"""The recurrent core: a ReLU recurrent layer over the steps of a sequence.

At sequence step ``t`` the layer is a dense layer on two inputs, ``x_t`` and its own state
``h_{t−1}``: :class:`RecurrentCore` runs one :class:`~onespike.hdl.dense.DenseCore` on the
joint weights ``[W_x | W_h]`` (one weight row per input neuron and per state neuron), and
around it

* a **merge** that feeds the core, per step ``s`` of its window of ``P = max(A_x, A_h)``
  steps, the spikes of ``x_t`` (input neuron ``j``), then those of ``h_{t−1}`` (row
  ``inputs + k``), then one end-of-step marker; a source with fewer levels joins at the
  window's end (step ``s − (P − A)``), so every spike still adds ``w·a``. The first step of
  a sequence takes no state (``h_{−1} = 0``);
* a **tee** that sends the core's spikes of ``h_t`` back to the merge (window ``t + 1``;
  never the last step's) and on to ``o`` (every step, or only the last step of each
  sequence when the next layer sees the final state only).

The core integrates window ``t + 1`` into one membrane bank while it fires ``h_t`` from the
other, so the state loops back without a buffer: each spike of ``h_t`` goes straight into
the integration of the next step. Sequences follow each other back to back; ``steps``
counters (reset by ``rst``) mark where one ends.
"""

import numpy as np
from amaranth.hdl import C, Module, Mux, Signal
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from onespike.hdl.dense import DenseCore, DenseSizes
from onespike.hdl.streams import SizedComponent, flat_index, index_shape, spike_layout
from onespike.ir import Dense, LayerWidths, Recurrent

__all__ = ["RecurrentCore", "RecurrentSizes", "joint_layer"]


def joint_layer(layer: Recurrent) -> Dense:
    """The dense layer on ``x_t`` and ``h_{t−1}`` side by side that one step computes."""
    inputs = layer.weight.shape[1] + layer.recurrent.shape[1]
    return Dense(in_shape=(inputs,), weight=np.hstack([layer.weight, layer.recurrent]),
                 bias=layer.bias, ramp=layer.ramp, act_bits=layer.act_bits,
                 scale=layer.scale)


class RecurrentSizes:
    """:class:`RecurrentCore`'s sizes as plain data: the inner core's
    (:class:`~onespike.hdl.dense.DenseSizes`) and the window's."""

    #: What the inner core answers for the whole layer (sizes and timing).
    DELEGATED = ("lanes", "groups", "words", "multipliers", "sorted_firing", "is_readout",
                 "reciprocals", "reset_cycles", "fan_out", "weight_bits", "weight_contents",
                 "weight_memory_bits", "state_memory_bits", "state_depth")

    #: the inner core's class: its sizes here, the component in :class:`RecurrentCore`
    INNER = DenseSizes

    def __init__(self, layer: Recurrent, *, in_levels: int, widths: LayerWidths, lanes: int,
                 steps: int, all_steps: bool, use_dsp: bool = True,
                 sorted_firing: bool = False):
        if not isinstance(layer, Recurrent):
            raise TypeError(f"RecurrentCore needs a Recurrent layer, not "
                            f"{type(layer).__name__}")
        self._layer, self._steps, self._all_steps = layer, int(steps), bool(all_steps)
        self._x_levels = int(in_levels)
        self._window = max(self._x_levels, layer.levels)
        self.core = self.INNER(joint_layer(layer), in_levels=self._window, widths=widths,
                               lanes=lanes, use_dsp=use_dsp, sorted_firing=sorted_firing)

    def __getattr__(self, name):
        if name in RecurrentSizes.DELEGATED:
            return getattr(self.core, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def inputs(self):
        """Input neurons of ``x`` (the state's rows come on top)."""
        return int(np.prod(self._layer.in_shape))

    @property
    def steps(self):
        return self._steps

    @property
    def all_steps(self):
        return self._all_steps

    @property
    def window(self):
        """``P``: steps of the integration window (``max(A_x, A_h)``)."""
        return self._window

    @property
    def spike_cycles(self) -> np.ndarray:
        """Integration cycles per spike of ``x`` (the state's spikes cost the same)."""
        return self.core.spike_cycles[:self.inputs]


class RecurrentCore(SizedComponent, RecurrentSizes):
    """A :class:`~onespike.ir.Recurrent` layer: ``i`` takes the spikes of ``x`` (``A_x =
    in_levels`` markers per step), ``o`` sends those of ``h`` (``A_h`` markers per step),
    ``steps`` windows per sequence on both, or on ``o`` only the last when ``all_steps`` is
    False. The lanes, firing and multiplies are the inner :attr:`core`'s."""

    INNER = DenseCore

    def members(self):
        layer = self._layer
        return {"i": In(stream.Signature(spike_layout(layer.in_shape, self._x_levels))),
                "o": Out(stream.Signature(spike_layout(layer.out_shape, layer.levels)))}

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        state = stream.Signature(self.core.o.payload.shape()).create()
        self._tee(m, core.o, state)
        self._merge(m, core.i, state)
        return m

    def _tee(self, m, spikes, state):
        """``spikes`` of ``h_t`` to ``state`` (the merge, unless ``t`` is the sequence's
        last step) and to ``o`` (every step, or the last only): a transfer when every
        wanted receiver takes it."""
        last_step = self._layer.levels - 1
        window = Signal(range(self._steps), name="out_window")
        final = window == self._steps - 1
        to_o = Signal()
        to_state = Signal()
        m.d.comb += [to_o.eq(final if not self._all_steps else 1), to_state.eq(~final),
                     self.o.payload.eq(spikes.payload), state.payload.eq(spikes.payload)]
        o_free = ~to_o | self.o.ready
        state_free = ~to_state | state.ready
        m.d.comb += [self.o.valid.eq(spikes.valid & to_o & state_free),
                     state.valid.eq(spikes.valid & to_state & o_free),
                     spikes.ready.eq(o_free & state_free)]
        with m.If(spikes.valid & spikes.ready & spikes.payload.end
                  & (spikes.payload.step == last_step)):
            m.d.sync += window.eq(Mux(final, 0, window + 1))

    def _state_input(self, neuron):
        """The joint layer's input row of ``h_{t−1}``'s ``neuron`` (after those of ``x``)."""
        return self.inputs + neuron

    def _merge(self, m, joint, state):
        """Per step of the window: the spikes of ``x_t`` (``i``), those of ``h_{t−1}``
        (``state``), one marker; a source's own markers are taken, not passed on."""
        x_delay = self._window - self._x_levels
        h_delay = self._window - self._layer.levels
        window = Signal(range(self._steps), name="in_window")
        step = Signal(index_shape(self._window), name="merge_step")

        def waiting(delay):
            """The steps before a source with fewer levels joins (none: a constant, which
            Verilator would otherwise flag as an always-false unsigned comparison)."""
            return step < delay if delay else C(0, 1)

        def forward(source, delay, index, following):
            """Pass ``source``'s spikes of this step on; on its marker go to ``following``."""
            payload = source.payload
            m.d.comb += [joint.payload.index.eq(index), joint.payload.step.eq(payload.step + delay),
                         joint.valid.eq(source.valid & ~payload.end),
                         source.ready.eq(payload.end | joint.ready)]
            with m.If(source.valid & payload.end):
                m.next = following

        with m.FSM(name="merge"):
            with m.State("X"):
                with m.If(waiting(x_delay)):
                    m.next = "H"
                with m.Else():
                    forward(self.i, x_delay, flat_index(self.i.payload.index,
                                                        self._layer.in_shape), "H")
            with m.State("H"):
                with m.If((window == 0) | waiting(h_delay)):
                    m.next = "END"
                with m.Else():
                    forward(state, h_delay, self._state_input(state.payload.index), "END")
            with m.State("END"):
                m.d.comb += [joint.valid.eq(1), joint.payload.end.eq(1),
                             joint.payload.step.eq(step)]
                with m.If(joint.ready):
                    m.d.sync += step.eq(step + 1)
                    m.next = "X"
                    with m.If(step == self._window - 1):
                        m.d.sync += [step.eq(0),
                                     window.eq(Mux(window == self._steps - 1, 0, window + 1))]
