"""Input encoder: integer activations in, TTFS spike stream out."""

from amaranth.hdl import Module, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from onespike.hdl.streams import activation_layout, index_shape, spike_layout

__all__ = ["SpikeEncoder"]


def positive(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")
    return value


class SpikeEncoder(wiring.Component):
    """Buffers one sample's activations, then emits its spike window.

    ``i`` takes ``neurons`` activations (``value`` in ``0..levels``) in neuron order; after the
    last one the encoder sweeps the buffer once per time step ``k`` and sends neuron ``j`` on
    ``o`` when its activation is ``levels - k``, then the step's end marker. It accepts the
    next sample once the window is out. Cost: ``neurons + 1`` cycles per step, plus output
    stalls.
    """

    def __init__(self, *, neurons: int, levels: int):
        self._neurons = positive(neurons, "Neuron count")
        self._levels = positive(levels, "Level count")
        super().__init__({
            "i": In(stream.Signature(activation_layout(levels))),
            "o": Out(stream.Signature(spike_layout(neurons, levels))),
        })

    @property
    def neurons(self):
        return self._neurons

    @property
    def levels(self):
        return self._levels

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = buffer = memory.Memory(
            shape=range(self.levels + 1), depth=self.neurons, init=[])
        write = buffer.write_port()
        read = buffer.read_port(domain="comb")
        j = Signal(index_shape(self.neurons))
        k = Signal(index_shape(self.levels))
        m.d.comb += [write.addr.eq(j), write.data.eq(self.i.payload.value), read.addr.eq(j),
                     self.o.payload.index.eq(j), self.o.payload.step.eq(k)]
        last_neuron = j == self.neurons - 1
        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += [self.i.ready.eq(1), write.en.eq(self.i.valid)]
                with m.If(self.i.valid):
                    m.d.sync += j.eq(j + 1)
                    with m.If(last_neuron):
                        m.d.sync += [j.eq(0), k.eq(0)]
                        m.next = "SCAN"
            with m.State("SCAN"):
                fires = read.data == self.levels - k
                m.d.comb += self.o.valid.eq(fires)
                with m.If(~fires | self.o.ready):
                    m.d.sync += j.eq(j + 1)
                    with m.If(last_neuron):
                        m.d.sync += j.eq(0)
                        m.next = "STEP_END"
            with m.State("STEP_END"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.end.eq(1)]
                with m.If(self.o.ready):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == self.levels - 1):
                        m.next = "LOAD"
                    with m.Else():
                        m.next = "SCAN"
        return m
