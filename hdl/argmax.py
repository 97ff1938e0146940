"""Argmax over the readout's logit stream (ties go to the lowest class)."""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from onespike.hdl.streams import class_layout, index_shape, logit_layout

__all__ = ["Argmax"]


class Argmax(wiring.Component):
    """Consumes one sample's logits (``index`` 0..C-1 in order, ``last`` on the final one)
    and sends the index of the largest on ``o``; a later equal logit does not win."""

    def __init__(self, *, classes: int, bits: int):
        self._classes, self._bits = classes, bits
        super().__init__({"i": In(stream.Signature(logit_layout(classes, bits))),
                          "o": Out(stream.Signature(class_layout(classes)))})

    def elaborate(self, platform):
        m = Module()
        best = Signal(signed(self._bits))
        best_index = Signal(index_shape(self._classes))
        full = Signal()  # a result waits on o
        m.d.comb += [self.o.valid.eq(full), self.o.payload.index.eq(best_index),
                     self.i.ready.eq(~full)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += full.eq(0)
        with m.If(self.i.valid & self.i.ready):
            with m.If((self.i.payload.index == 0) | (self.i.payload.value > best)):
                m.d.sync += [best.eq(self.i.payload.value),
                             best_index.eq(self.i.payload.index)]
            with m.If(self.i.payload.last):
                m.d.sync += full.eq(1)
        return m
