"""The framing of the host link (:mod:`onespike.boards.protocol`) in logic: a receiver that
turns UART bytes into frame events and a sender that wraps a reply in sync, kind, length
and crc8. Both check or make the crc with ``amaranth.lib.crc`` and :data:`~.protocol.CRC8`.
"""

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
        m.submodules.crc = crc = proto.CRC8.create()
        got = self.i.valid & self.i.ready
        length = Signal(16)
        count = Signal(16)          # payload bytes taken
        fault = Signal(proto.Fault)
        dropped = Signal()          # bytes arrived while the frame was answered
        quiet = Signal(range(self._timeout + 1))   # cycles since the last byte
        with m.If(self.i.valid):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != self._timeout):
            m.d.sync += quiet.eq(quiet + 1)
        silent = (quiet == self._timeout) & ~self.i.valid
        m.d.comb += [crc.data.eq(self.i.payload), self.o.payload.fault.eq(fault),
                     self.o.payload.byte.eq(self.i.payload),
                     self.o.payload.length.eq(length)]

        def watch_line(timeout=True):
            with m.If(self.framing):
                break_frame(proto.Fault.FRAMING)
            with m.Elif(self.overrun):
                break_frame(proto.Fault.OVERRUN)
            if timeout:
                with m.Elif(silent):
                    break_frame(proto.Fault.TIMEOUT)

        def break_frame(code):
            m.d.sync += fault.eq(code)
            m.next = "DRAIN"

        def take(to):
            """Read a header byte into the crc."""
            m.d.comb += [self.i.ready.eq(1), self.busy.eq(1), crc.valid.eq(got)]
            with m.If(got):
                m.next = to
            watch_line()

        def answer(event):
            """Hold ``event`` until taken, dropping (and remembering) bytes meanwhile."""
            m.d.comb += [self.i.ready.eq(1), self.busy.eq(1), self.o.valid.eq(1),
                         self.o.payload.event.eq(event)]
            with m.If(got | self.framing | self.overrun):
                m.d.sync += dropped.eq(1)
            with m.If(self.o.ready):
                m.d.sync += [dropped.eq(0), fault.eq(proto.Fault.NONE)]
                m.next = "SYNC"
                with m.If(dropped | got | self.framing | self.overrun):
                    m.d.sync += fault.eq(proto.Fault.OVERRUN)
                    m.next = "DRAIN"

        with m.FSM():
            with m.State("SYNC"):
                m.d.comb += [self.i.ready.eq(1), crc.start.eq(1)]
                m.d.sync += count.eq(0)
                with m.If(got & (self.i.payload == proto.HOST_SYNC)):
                    m.next = "KIND"
                watch_line(timeout=False)
            with m.State("KIND"):
                take("LENGTH_LOW")
                with m.If(got):
                    m.d.sync += self.o.payload.kind.eq(self.i.payload)
            with m.State("LENGTH_LOW"):
                take("LENGTH_HIGH")
                with m.If(got):
                    m.d.sync += length[:8].eq(self.i.payload)
            with m.State("LENGTH_HIGH"):
                self._forward(m, crc, got, length, FrameEvent.HEADER)
                full = Cat(length[:8], self.i.payload)
                m.d.comb += self.o.payload.length.eq(full)
                with m.If(got):
                    m.d.sync += length.eq(full)
                    m.next = "PAYLOAD"
                    with m.If(full == 0):
                        m.next = "CHECK"
                watch_line()
            with m.State("PAYLOAD"):
                self._forward(m, crc, got, length, FrameEvent.BYTE)
                with m.If(got):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == length - 1):
                        m.next = "CHECK"
                watch_line()
            with m.State("CHECK"):
                m.d.comb += [self.i.ready.eq(1), self.busy.eq(1)]
                with m.If(got):
                    with m.If(self.i.payload != crc.crc):
                        m.d.sync += fault.eq(proto.Fault.CHECKSUM)
                    m.next = "END"
                watch_line()
            with m.State("END"):
                answer(FrameEvent.END)
            with m.State("DRAIN"):      # skip the rest of a broken frame
                m.d.comb += [self.i.ready.eq(1), self.busy.eq(1)]
                with m.If(silent):
                    m.next = "BROKEN"
            with m.State("BROKEN"):
                answer(FrameEvent.BROKEN)
        return m

    def _forward(self, m, crc, got, length, event):
        """Pass the UART byte on as ``event``; it is taken when the event is."""
        m.d.comb += [self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready),
                     self.o.payload.event.eq(event), self.busy.eq(1), crc.valid.eq(got)]


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
