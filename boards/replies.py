"""The board's answers: what the link has to say (a :class:`~.protocol.Reply` and its
fault, class and ``loaded`` flag) turned into a frame header and body bytes for
:class:`~.frames.FrameSender`, with the memories that capture a sample's logits and spike
steps from the accelerator's taps."""

import struct
from typing import NamedTuple

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from onespike.boards import protocol as proto
from onespike.boards.frames import header_layout
from onespike.hdl.streams import TapSignature, flat_index, index_shape

__all__ = ["LOADED_AT", "reply_layout", "Replies"]

LOADED_AT = struct.calcsize(proto.Identity.FORMAT[:-2])   # the ``loaded`` byte of IDENTITY


def reply_layout(classes: int) -> data.StructLayout:
    """What to answer: ``kind``; ``fault`` (ERROR); ``cls``, the class (RESULT, SPIKES);
    ``loaded``, whether the run-time weights are loaded (IDENTITY)."""
    return data.StructLayout({"kind": proto.Reply, "fault": proto.Fault,
                              "cls": index_shape(classes), "loaded": 1})


class _Position(NamedTuple):
    """Where a reply's body is: bytes sent, in the spike steps, at a step's second byte;
    a byte is taken (``advance``), the request is taken (``finish``)."""
    count: object
    in_steps: object
    high: object
    advance: object
    finish: object


class Replies(wiring.Component):
    """Writes each request of ``i`` as a frame header (``header``) and body (``body``).

    ``i`` is taken once its frame's crc byte is sent and, for ``ERROR``, the recorded spike
    steps are forgotten. Logits are recorded from every transfer on ``tap_logits``; the spike
    steps of ``tap_steps`` while ``capture`` is high. A ``SPIKES`` body forgets each step it
    sends; an ``ERROR`` forgets them all (``spiking`` cycles, while it is sent), as does a
    reset. ``IDENTITY`` is ``identity`` with the request's ``loaded``.
    """

    def __init__(self, identity: proto.Identity, *, logit_shape, spike_shape, spike_map,
                 levels: int):
        self._identity = identity
        # the dense baseline's tap carries activations: activation a is the spike of step A - a
        self._activations = "value" in dict(data.Layout.cast(spike_shape).members)
        self._spike_map, self._levels = tuple(spike_map), levels
        super().__init__({
            "i": In(stream.Signature(reply_layout(identity.classes))),
            "header": Out(stream.Signature(header_layout)),
            "body": Out(stream.Signature(8)),
            "tap_logits": In(TapSignature(logit_shape)),
            "tap_steps": In(TapSignature(spike_shape)),
            "capture": In(1)})

    @property
    def identity(self):
        return self._identity

    @property
    def spike_map(self):
        """The shape of the layer whose spike steps are recorded."""
        return self._spike_map

    @property
    def levels(self):
        """Time steps of that layer's window (steps ``0..levels-1``)."""
        return self._levels

    def elaborate(self, platform):
        m = Module()
        ident, request = self._identity, self.i.payload
        lengths = proto.reply_lengths(ident)
        done = Signal()            # the header was taken: this request's frame is sent
        swept = Signal()           # this ERROR request's steps are forgotten
        sent = self.header.valid & self.header.ready
        m.d.comb += [self.header.valid.eq(self.i.valid & ~done),
                     self.header.payload.kind.eq(request.kind),
                     self.body.valid.eq(self.i.valid & ~done),
                     self.i.ready.eq((done | sent) &
                                     ((request.kind != proto.Reply.ERROR) | swept))]
        with m.Switch(request.kind):
            for kind, length in lengths.items():
                with m.Case(kind):
                    m.d.comb += self.header.payload.length.eq(length)
        with m.If(sent):
            m.d.sync += done.eq(1)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += done.eq(0)
        count = Signal(16)         # body bytes sent of this request
        result_length = lengths[proto.Reply.RESULT]
        at = _Position(count=count, in_steps=count >= result_length,
                       high=count[0] ^ (result_length & 1),   # a step's second byte
                       advance=self.body.valid & self.body.ready,
                       finish=self.i.valid & self.i.ready)
        with m.If(at.advance):
            m.d.sync += count.eq(count + 1)
        with m.If(at.finish):
            m.d.sync += count.eq(0)
        logit_byte = self._logits(m, at)
        step_byte = self._steps(m, at, swept)
        with m.Switch(request.kind):
            with m.Case(proto.Reply.IDENTITY):
                body = [Const(b, 8) for b in ident.pack()]
                body[LOADED_AT] = request.loaded
                m.d.comb += self.body.payload.eq(Array(body)[count])
            with m.Case(proto.Reply.ERROR):
                m.d.comb += self.body.payload.eq(request.fault)
            with m.Default():
                m.d.comb += self.body.payload.eq(
                    Mux(count == 0, request.cls, Mux(at.in_steps, step_byte, logit_byte)))
        return m

    def _logits(self, m, at):
        """Record the logits; the logit byte the body sends next (read a cycle ahead)."""
        lb, classes = self._identity.logit_bytes, self._identity.classes
        m.submodules.logits = logits = memory.Memory(shape=signed(8 * lb), depth=classes,
                                                     init=[])
        write, read = logits.write_port(), logits.read_port()
        tap = self.tap_logits
        m.d.comb += [write.addr.eq(tap.payload.index), write.data.eq(tap.payload.value),
                     write.en.eq(tap.valid)]
        k = Signal(range(classes + 1))       # the logit being sent, and its byte
        b = Signal(range(max(lb, 2)))
        m.d.comb += read.addr.eq(k)
        with m.If(at.advance & (at.count != 0) & ~at.in_steps):
            m.d.sync += b.eq(b + 1)
            with m.If(b == lb - 1):
                m.d.sync += [b.eq(0), k.eq(k + 1)]
                m.d.comb += read.addr.eq(k + 1)
        with m.If(at.finish):
            m.d.sync += [k.eq(0), b.eq(0)]
        return read.data.word_select(b, 8)

    def _recorded(self, payload):
        """``(step + 1, fires)`` of a tap transfer: a spike's step, or for the dense
        baseline's activation ``a`` the step ``A − a`` its spike would take (none for 0)."""
        if self._activations:
            return self._levels - payload.value + 1, payload.value != 0
        return payload.step + 1, 1

    def _steps(self, m, at, swept):
        """Record the spike steps (step + 1, 0: none); forget them; the step byte next."""
        spiking, request = self._identity.spiking, self.i.payload
        m.submodules.steps = steps = memory.Memory(
            shape=max(1, self._levels.bit_length()), depth=spiking, init=[])
        write = steps.write_port()
        read = steps.read_port(transparent_for=[write])
        neuron = Signal(range(spiking + 1))   # the neuron being sent, or swept
        sweeping = Signal(init=1)             # forgetting all steps (after a reset, an ERROR)
        tap = self.tap_steps
        entry, fires = self._recorded(tap.payload)
        m.d.comb += [write.addr.eq(flat_index(tap.payload.index, self._spike_map)),
                     write.data.eq(entry),
                     write.en.eq(tap.valid & ~tap.payload.end & self.capture & fires),
                     read.addr.eq(neuron)]
        with m.If(sweeping | (at.advance & at.in_steps & at.high)):
            m.d.comb += [write.addr.eq(neuron), write.data.eq(0), write.en.eq(1),
                         read.addr.eq(neuron + 1)]
            m.d.sync += neuron.eq(neuron + 1)
        with m.If(sweeping & (neuron == spiking - 1)):
            m.d.sync += [sweeping.eq(0), swept.eq(1)]
        with m.If(self.i.valid & (request.kind == proto.Reply.ERROR) & ~swept & ~sweeping):
            m.d.sync += sweeping.eq(1)
        with m.If(~self.i.valid | self.i.ready):
            m.d.sync += swept.eq(0)
        with m.If(at.finish | (sweeping & (neuron == spiking - 1))):
            m.d.sync += neuron.eq(0)
        entry = read.data
        step = Mux(entry == 0, proto.NO_SPIKE_STEP, entry - 1)
        return Mux(at.high, step[8:16], step[:8])
