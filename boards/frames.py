"""The framing of the host link (:mod:`onespike.boards.protocol`) in logic: a receiver that
turns UART bytes into frame events and a sender that wraps a reply in sync, kind, length
and crc8. Both check or make the crc with ``amaranth.lib.crc`` and :data:`~.protocol.CRC8`.
"""

from typing import NamedTuple

from amaranth.hdl import Array, Cat, Const, Module, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from onespike.boards import protocol as proto
from onespike.hdl.streams import refuse

__all__ = ["FrameEvent", "event_layout", "header_layout", "FrameReceiver", "FrameSender"]


class FrameEvent(enum.Enum, shape=2):
    HEADER = 0       # ``kind`` and ``length`` of a new frame
    BYTE = 1         # one payload byte, ``byte``
    END = 2          # the crc byte arrived; ``fault``: NONE or CHECKSUM
    BROKEN = 3       # the line broke (``fault``: FRAMING, OVERRUN, TIMEOUT) and fell quiet


#: Payload of :attr:`FrameReceiver.o`. ``kind`` is the byte the host sent (a
#: :class:`~.protocol.Command`, or not); the other fields are valid in the events named.
event_layout = data.StructLayout({"event": FrameEvent, "kind": 8, "length": 16, "byte": 8,
                                  "fault": proto.Fault})

#: Payload of :attr:`FrameSender.header`.
header_layout = data.StructLayout({"kind": proto.Reply, "length": 16})


class _Receiving(NamedTuple):
    crc: object        # amaranth.lib.crc Processor over kind, length, payload
    got: object        # a byte is taken from ``i``
    length: object     # the frame's payload length
    count: object      # payload bytes taken
    fault: object      # why the frame broke, or CHECKSUM
    dropped: object    # bytes arrived while the frame was answered
    silent: object     # no byte for ``timeout`` cycles


class FrameReceiver(wiring.Component):
    """Parses host frames from the UART byte stream ``i`` into events on ``o``.

    Bytes before :data:`~.protocol.HOST_SYNC` are skipped. A frame gives one ``HEADER``
    event, one ``BYTE`` event per payload byte, then ``END``. ``HEADER`` and ``BYTE`` hold
    their UART byte in ``i`` until taken (a sink that falls behind the line makes the
    UART overrun, which breaks the frame). ``END`` and ``BROKEN`` mean "answer this frame":
    they are taken when the answer has been sent, and bytes arriving until then are
    dropped; if any were, a ``BROKEN`` event with ``OVERRUN`` follows once the line has
    been quiet for ``timeout`` cycles.

    A line fault (``framing`` or ``overrun`` high, or ``timeout`` cycles without a byte
    inside a frame) ends the frame: the rest of it is skipped until the line is quiet for
    ``timeout`` cycles, then ``BROKEN`` is sent with the first fault. ``busy`` is high from
    the kind byte until the frame's ``END`` or ``BROKEN`` event is taken.
    """
    i: In(stream.Signature(8))
    framing: In(1)
    overrun: In(1)
    o: Out(stream.Signature(event_layout))
    busy: Out(1)

    def __init__(self, *, timeout: int):
        if timeout < 1:
            refuse(self, ValueError(f"Timeout must be a positive integer, not {timeout}"))
        self._timeout = timeout
        super().__init__()

    @property
    def timeout(self):
        return self._timeout

    def elaborate(self, platform):
        m = Module()
        at = self._state(m)
        with m.FSM():
            self._header(m, at)
            self._payload(m, at)
            with m.State("END"):
                self._answer(m, at, FrameEvent.END)
            with m.State("DRAIN"):      # skip the rest of a broken frame
                m.d.comb += [self.i.ready.eq(1), self.busy.eq(1)]
                with m.If(at.silent):
                    m.next = "BROKEN"
            with m.State("BROKEN"):
                self._answer(m, at, FrameEvent.BROKEN)
        return m

    def _state(self, m):
        """The receiver's registers, its crc checker and its line-silence timer."""
        m.submodules.crc = crc = proto.CRC8.create()
        quiet = Signal(range(self._timeout + 1))   # cycles since the last byte
        with m.If(self.i.valid):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != self._timeout):
            m.d.sync += quiet.eq(quiet + 1)
        at = _Receiving(crc=crc, got=self.i.valid & self.i.ready, length=Signal(16),
                        count=Signal(16), fault=Signal(proto.Fault), dropped=Signal(),
                        silent=(quiet == self._timeout) & ~self.i.valid)
        m.d.comb += [crc.data.eq(self.i.payload), self.o.payload.fault.eq(at.fault),
                     self.o.payload.byte.eq(self.i.payload),
                     self.o.payload.length.eq(at.length)]
        return at

    def _watch_line(self, m, at, timeout=True):
        """End the frame on a line fault."""
        with m.If(self.framing):
            self._break(m, at, proto.Fault.FRAMING)
        with m.Elif(self.overrun):
            self._break(m, at, proto.Fault.OVERRUN)
        if timeout:
            with m.Elif(at.silent):
                self._break(m, at, proto.Fault.TIMEOUT)

    def _break(self, m, at, code):
        m.d.sync += at.fault.eq(code)
        m.next = "DRAIN"

    def _take(self, m, at, to):
        """Read a header byte into the crc, then go to state ``to``."""
        m.d.comb += [self.i.ready.eq(1), self.busy.eq(1), at.crc.valid.eq(at.got)]
        with m.If(at.got):
            m.next = to
        self._watch_line(m, at)

    def _forward(self, m, at, event):
        """Pass the UART byte on as ``event``; it is taken when the event is."""
        m.d.comb += [self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready),
                     self.o.payload.event.eq(event), self.busy.eq(1),
                     at.crc.valid.eq(at.got)]

    def _header(self, m, at):
        """States from the sync byte to the ``HEADER`` event."""
        byte = self.i.payload
        with m.State("SYNC"):
            m.d.comb += [self.i.ready.eq(1), at.crc.start.eq(1)]
            m.d.sync += at.count.eq(0)
            with m.If(at.got & (byte == proto.HOST_SYNC)):
                m.next = "KIND"
            self._watch_line(m, at, timeout=False)
        with m.State("KIND"):
            self._take(m, at, "LENGTH_LOW")
            with m.If(at.got):
                m.d.sync += self.o.payload.kind.eq(byte)
        with m.State("LENGTH_LOW"):
            self._take(m, at, "LENGTH_HIGH")
            with m.If(at.got):
                m.d.sync += at.length[:8].eq(byte)
        with m.State("LENGTH_HIGH"):
            self._forward(m, at, FrameEvent.HEADER)
            full = Cat(at.length[:8], byte)
            m.d.comb += self.o.payload.length.eq(full)
            with m.If(at.got):
                m.d.sync += at.length.eq(full)
                m.next = "PAYLOAD"
                with m.If(full == 0):
                    m.next = "CHECK"
            self._watch_line(m, at)     # last: a line fault wins over the transitions

    def _payload(self, m, at):
        """States from the first payload byte to the crc byte."""
        with m.State("PAYLOAD"):
            self._forward(m, at, FrameEvent.BYTE)
            with m.If(at.got):
                m.d.sync += at.count.eq(at.count + 1)
                with m.If(at.count == at.length - 1):
                    m.next = "CHECK"
            self._watch_line(m, at)
        with m.State("CHECK"):
            m.d.comb += [self.i.ready.eq(1), self.busy.eq(1)]
            with m.If(at.got):
                with m.If(self.i.payload != at.crc.crc):
                    m.d.sync += at.fault.eq(proto.Fault.CHECKSUM)
                m.next = "END"
            self._watch_line(m, at)

    def _answer(self, m, at, event):
        """Hold ``event`` until taken, dropping (and remembering) bytes meanwhile."""
        arrived = at.got | self.framing | self.overrun
        m.d.comb += [self.i.ready.eq(1), self.busy.eq(1), self.o.valid.eq(1),
                     self.o.payload.event.eq(event)]
        with m.If(arrived):
            m.d.sync += at.dropped.eq(1)
        with m.If(self.o.ready):
            m.d.sync += [at.dropped.eq(0), at.fault.eq(proto.Fault.NONE)]
            m.next = "SYNC"
            with m.If(at.dropped | arrived):
                m.d.sync += at.fault.eq(proto.Fault.OVERRUN)
                m.next = "DRAIN"


class FrameSender(wiring.Component):
    """Sends each reply as a board frame on ``o``: :data:`~.protocol.BOARD_SYNC`, ``kind``,
    ``length`` (u16 LE), ``length`` bytes taken from ``body``, crc8.

    ``header`` is taken in the cycle its frame's crc byte is taken by ``o``, so its payload
    holds for the whole frame. ``body`` is read only between a frame's length and crc.
    """
    header: In(stream.Signature(header_layout))
    body: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = proto.CRC8.create()
        sent = Signal(16)           # bytes of the header, then of the body, sent
        taken = self.o.valid & self.o.ready
        length = self.header.payload.length
        m.d.comb += crc.data.eq(self.o.payload)
        with m.FSM():
            with m.State("HEADER"):
                head = Array([Const(proto.BOARD_SYNC, 8), self.header.payload.kind,
                              length[:8], length[8:]])
                m.d.comb += [self.o.valid.eq(self.header.valid), self.o.payload.eq(head[sent]),
                             crc.valid.eq(taken & (sent != 0)), crc.start.eq(sent == 0)]
                with m.If(taken):
                    m.d.sync += sent.eq(sent + 1)
                    with m.If(sent == 3):
                        m.d.sync += sent.eq(0)
                        m.next = "BODY"
                        with m.If(length == 0):
                            m.next = "CRC"
            with m.State("BODY"):
                m.d.comb += [self.o.valid.eq(self.body.valid),
                             self.o.payload.eq(self.body.payload),
                             self.body.ready.eq(self.o.ready), crc.valid.eq(taken)]
                with m.If(taken):
                    m.d.sync += sent.eq(sent + 1)
                    with m.If(sent == length - 1):
                        m.next = "CRC"
            with m.State("CRC"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(crc.crc),
                             self.header.ready.eq(self.o.ready)]
                with m.If(taken):
                    m.d.sync += sent.eq(0)
                    m.next = "HEADER"
        return m
