"""Max pooling in the spike domain: a pooled neuron fires with its first input spike."""

import math

from amaranth.hdl import Const, Module, Signal
from amaranth.lib import memory, stream
from amaranth.lib.wiring import In, Out

from onespike.hdl.arith import const_divide, const_multiply
from onespike.hdl.core import Odometer
from onespike.hdl.encoder import positive
from onespike.hdl.streams import SizedComponent, spike_layout
from onespike.ir import MaxPool

__all__ = ["MaxPoolCore", "MaxPoolSizes", "pool_spans", "pooled_candidate"]


def pool_spans(layer: MaxPool) -> tuple:
    """Pooled rows and columns one input can belong to: ``ceil(kernel / stride)`` per axis."""
    return tuple(-(-k // s) for k, s in zip(layer.kernel, layer.stride))


def pooled_candidate(layer: MaxPool, index, dy, dx):
    """``(word, ok, py, px)``: the pooled neuron ``(c, top − dy, left − dx)`` whose window
    may hold input ``index`` (``top``, ``left``: the last pooled row and column that can),
    its C-order number and whether its window really holds the input."""
    _, ho, wo = layer.out_shape
    ok, coords = Const(1), []
    for coord, d, size, k, s, p, span in zip((index.y, index.x), (dy, dx), (ho, wo),
                                             layer.kernel, layer.stride, layer.padding,
                                             pool_spans(layer)):
        shifted = coord + p
        top = const_divide(shifted, s)
        if span > 1 and not isinstance(d, int):
            ok &= top >= d
        pooled = (top - d)[:top.shape().width]
        ok &= (pooled < size) & (shifted - const_multiply(pooled, s) <= k - 1)
        coords.append(pooled)
    py, px = coords
    return const_multiply(const_multiply(index.c, ho) + py, wo) + px, ok, py, px


class MaxPoolSizes:
    """:class:`MaxPoolCore`'s sizes as plain data."""

    def __init__(self, layer: MaxPool, *, levels: int):
        if not isinstance(layer, MaxPool):
            raise TypeError(f"MaxPoolCore needs a MaxPool layer, not {type(layer).__name__}")
        self._layer = layer
        self._levels = positive(levels, "Level count")

    @property
    def inputs(self):
        c, h, w = self._layer.in_shape
        return c * h * w

    @property
    def spans(self):
        """Pooled rows and columns one input can belong to (:func:`pool_spans`)."""
        return pool_spans(self._layer)

    @property
    def fan_out(self):
        """Cycles per input spike (the pooled neurons it checks)."""
        return math.prod(self.spans)

    @property
    def fired_memory_bits(self):
        c, h, w = self._layer.out_shape
        return c * h * w


class MaxPoolCore(SizedComponent, MaxPoolSizes):
    """Passes on, in the same step, the first spike that reaches each pooled neuron.

    An input spike ``(c, y, x)`` checks the ``ceil(kh/sh)·ceil(kw/sw)`` pooled neurons whose window
    holds it (padding holds nothing) against a *fired* bit per pooled neuron (a memory) and
    sends those that have not fired yet, one per cycle (the next input is taken in the
    last one); no arithmetic on values at all.
    End-of-step markers pass through (with ``index`` 0); after the window's last one the
    fired bits are cleared (one word per cycle) before the next sample, and likewise after
    a reset.
    """

    def members(self):
        layer = self._layer
        return {"i": In(stream.Signature(spike_layout(layer.in_shape, self._levels))),
                "o": Out(stream.Signature(spike_layout(layer.out_shape, self._levels)))}

    def elaborate(self, platform):
        m = Module()
        layer = self._layer
        c_out, ho, wo = layer.out_shape
        m.submodules.fired = fired = memory.Memory(shape=1, depth=c_out * ho * wo, init=[])
        write = fired.write_port()
        read = fired.read_port(transparent_for=[write])

        spike = Signal(self.i.payload.shape())
        offsets = Odometer(self.spans, "offset")
        word, ok, py, px = pooled_candidate(layer, spike.index, *offsets.values)
        m.d.comb += [read.addr.eq(word), write.addr.eq(word), write.data.eq(1)]
        m.d.comb += [self.o.payload.step.eq(spike.step), self.o.payload.index.c.eq(spike.index.c),
                     self.o.payload.index.y.eq(py), self.o.payload.index.x.eq(px)]
        clear = Signal(range(c_out * ho * wo))
        with m.FSM():
            with m.State("CLEAR"):
                m.d.comb += [write.addr.eq(clear), write.data.eq(0), write.en.eq(1)]
                m.d.sync += clear.eq(clear + 1)
                with m.If(clear == c_out * ho * wo - 1):
                    m.d.sync += clear.eq(0)
                    m.next = "ACCEPT"
            def accept():
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += spike.eq(self.i.payload)
                    offsets.load(m, [0, 0])
                    first = pooled_candidate(layer, self.i.payload.index, 0, 0)[0]
                    m.d.comb += read.addr.eq(first)
                    m.next = "END"
                    with m.If(~self.i.payload.end):
                        m.next = "CHECK"

            with m.State("ACCEPT"):
                accept()
            with m.State("CHECK"):   # read.data: the fired bit of the candidate
                fresh = ok & ~read.data
                m.d.comb += self.o.valid.eq(fresh)
                with m.If(~fresh | self.o.ready):
                    m.d.comb += write.en.eq(fresh)
                    after = offsets.next_values()
                    offsets.load(m, after)
                    after_word = pooled_candidate(layer, spike.index, *after)[0]
                    m.d.comb += read.addr.eq(after_word)
                    with m.If(offsets.last()):
                        m.next = "ACCEPT"
                        accept()         # the next input in the same cycle
            with m.State("END"):                     # index unused: a defined 0
                m.d.comb += [self.o.valid.eq(1), self.o.payload.end.eq(1),
                             self.o.payload.index.eq(0)]
                with m.If(self.o.ready):
                    m.next = "ACCEPT"
                    with m.If(spike.step == self._levels - 1):
                        m.next = "CLEAR"
        return m
