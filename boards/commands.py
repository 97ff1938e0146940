"""The board's command handler: frame events in, the accelerator fed, run-time weights
written, and one reply request out per frame."""

from typing import NamedTuple

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from onespike.boards import protocol as proto
from onespike.boards.frames import FrameEvent, event_layout
from onespike.boards.replies import reply_layout
from onespike.hdl.streams import activation_layout, class_layout

__all__ = ["LoadSignature", "CommandHandler"]


class LoadSignature(wiring.Signature):
    """Run-time weight bytes from the host: ``valid`` for one cycle per byte, ``address``
    counts bytes from 0 in the order of the build's load image."""

    def __init__(self, size: int):
        super().__init__({"valid": Out(1), "address": Out(range(max(size, 2))),
                          "byte": Out(8)})


class _Handling(NamedTuple):
    fault: object        # the first fault of this frame
    feeding: object      # the payload goes to the accelerator
    loaded: object       # all run-time weights are loaded
    load_next: object    # the next run-time weight byte
    load_start: object   # load_next when this frame began
    count: object        # payload bytes taken
    cls: object          # the class of the last sample


class CommandHandler(wiring.Component):
    """Carries out the frames of :class:`~.frames.FrameReceiver` (``i``).

    ``INFER``/``INFER_SPIKES`` payload bytes go to ``activations`` as they arrive (values
    above ``A`` clipped to ``A`` and answered ``RANGE``), and the frame's answer waits for
    the class on ``result``; ``capture`` is high from the header of an ``INFER_SPIKES``
    frame until its answer is sent. ``LOAD`` data bytes appear on ``load``. ``abort`` is
    high for one cycle when a frame broke half-way (reset the accelerator with it).

    Each frame gets one request on ``reply``; the frame's ``END`` or ``BROKEN`` event is
    taken in the cycle the request is. A frame with a fault (the first found; a bad
    checksum or a broken line overrides any other) is answered ``ERROR`` and loads nothing:
    ``load`` may have been written, but the next ``LOAD`` must start at the same offset.
    """

    def __init__(self, identity: proto.Identity):
        self._identity = identity
        super().__init__({
            "i": In(stream.Signature(event_layout)),
            "activations": Out(stream.Signature(activation_layout(identity.levels))),
            "result": In(stream.Signature(class_layout(identity.classes))),
            "abort": Out(1),
            "capture": Out(1),
            "load": Out(LoadSignature(identity.load_bytes)),
            "reply": Out(stream.Signature(reply_layout(identity.classes)))})

    @property
    def identity(self):
        return self._identity

    def elaborate(self, platform):
        m = Module()
        event = self.i.payload
        at = _Handling(fault=Signal(proto.Fault), feeding=Signal(),
                       loaded=Signal(init=self._identity.load_bytes == 0),
                       load_next=Signal(32), load_start=Signal(32), count=Signal(16),
                       cls=Signal.like(self.result.payload.index))
        fault, feeding = at.fault, at.feeding
        m.d.comb += [self.load.address.eq(at.load_next), self.load.byte.eq(event.byte)]
        with m.FSM():
            with m.State("FRAME"):
                with m.Switch(event.event):
                    with m.Case(FrameEvent.HEADER):
                        m.d.comb += self.i.ready.eq(1)
                        with m.If(self.i.valid):
                            self._header(m, at)
                    with m.Case(FrameEvent.BYTE):
                        self._byte(m, at)
                    with m.Case(FrameEvent.END):
                        with m.If(self.i.valid):
                            with m.If(event.fault != proto.Fault.NONE):
                                m.d.sync += fault.eq(event.fault)
                            m.next = "REPLY"
                            with m.If(feeding):
                                m.next = "RESULT"      # the accelerator has the sample
                    with m.Case(FrameEvent.BROKEN):
                        with m.If(self.i.valid):
                            m.d.comb += self.abort.eq(1)
                            m.d.sync += [fault.eq(event.fault), feeding.eq(0),
                                         self.capture.eq(0)]
                            m.next = "REPLY"
            with m.State("RESULT"):
                m.d.comb += self.result.ready.eq(1)
                with m.If(self.result.valid):
                    m.d.sync += [at.cls.eq(self.result.payload.index), feeding.eq(0)]
                    m.next = "REPLY"
            with m.State("REPLY"):
                self._reply(m, at)
        return m

    @staticmethod
    def _set_fault(m, at, code):
        with m.If(at.fault == proto.Fault.NONE):
            m.d.sync += at.fault.eq(code)

    def _header(self, m, at):
        """Check a frame's command and length; start feeding the accelerator."""
        ident, kind, length = self._identity, self.i.payload.kind, self.i.payload.length
        m.d.sync += at.count.eq(0)
        with m.Switch(kind):
            with m.Case(proto.Command.IDENTIFY):
                with m.If(length != 0):
                    self._set_fault(m, at, proto.Fault.LENGTH)
            with m.Case(proto.Command.INFER, proto.Command.INFER_SPIKES):
                with m.If(length != ident.inputs):
                    self._set_fault(m, at, proto.Fault.LENGTH)
                with m.Elif(~at.loaded):
                    self._set_fault(m, at, proto.Fault.NOT_LOADED)
                with m.Else():
                    m.d.sync += [at.feeding.eq(1),
                                 self.capture.eq(kind == proto.Command.INFER_SPIKES)]
            with m.Case(proto.Command.LOAD):
                if ident.load_bytes == 0:
                    self._set_fault(m, at, proto.Fault.COMMAND)
                else:
                    with m.If(length < 4):
                        self._set_fault(m, at, proto.Fault.LENGTH)
            with m.Default():
                self._set_fault(m, at, proto.Fault.COMMAND)

    def _byte(self, m, at):
        """One payload byte: to the accelerator (taken when it is), or to the weights."""
        levels, byte = self._identity.levels, self.i.payload.byte
        with m.If(at.feeding):
            m.d.comb += [self.activations.valid.eq(self.i.valid),
                         self.activations.payload.value.eq(Mux(byte > levels, levels, byte)),
                         self.i.ready.eq(self.activations.ready)]
        with m.Else():
            m.d.comb += self.i.ready.eq(1)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += at.count.eq(at.count + 1)
            with m.If(at.feeding & (byte > levels)):
                self._set_fault(m, at, proto.Fault.RANGE)
            if self._identity.load_bytes:
                with m.If((self.i.payload.kind == proto.Command.LOAD) &
                          (at.fault == proto.Fault.NONE)):
                    self._load_byte(m, at, byte)

    def _load_byte(self, m, at, byte):
        """One LOAD payload byte: 4 offset bytes (LE), then data written in order from
        ``load_next``; offset 0 starts the load over."""
        offset, load_next, count = Signal(32), at.load_next, at.count
        with m.If(count < 4):
            m.d.sync += offset.eq(Cat(offset[8:], byte))
            with m.If(count == 3):
                start = Cat(offset[8:], byte)
                with m.If(start == 0):
                    m.d.sync += [load_next.eq(0), at.loaded.eq(0)]
                with m.Elif(start != load_next):
                    self._set_fault(m, at, proto.Fault.RANGE)
        with m.Elif(load_next >= self._identity.load_bytes):
            self._set_fault(m, at, proto.Fault.RANGE)
        with m.Else():
            m.d.comb += self.load.valid.eq(1)
            m.d.sync += load_next.eq(load_next + 1)

    def _reply(self, m, at):
        """Ask for the frame's answer; when it is sent, take the frame's last event."""
        fault, kind = at.fault, self.i.payload.kind
        request = self.reply.payload
        m.d.comb += [self.reply.valid.eq(1), request.fault.eq(fault), request.cls.eq(at.cls),
                     request.loaded.eq(at.loaded), request.kind.eq(proto.Reply.ERROR)]
        with m.If(fault == proto.Fault.NONE):
            with m.Switch(kind):
                for command, reply in [(proto.Command.IDENTIFY, proto.Reply.IDENTITY),
                                       (proto.Command.INFER, proto.Reply.RESULT),
                                       (proto.Command.INFER_SPIKES, proto.Reply.SPIKES),
                                       (proto.Command.LOAD, proto.Reply.LOADED)]:
                    with m.Case(command):
                        m.d.comb += request.kind.eq(reply)
        with m.If(self.reply.ready):
            m.d.comb += self.i.ready.eq(1)
            m.d.sync += [fault.eq(proto.Fault.NONE), self.capture.eq(0)]
            with m.If(fault != proto.Fault.NONE):
                m.d.sync += at.load_next.eq(at.load_start)
            with m.Else():
                m.d.sync += at.load_start.eq(at.load_next)
                with m.If(kind == proto.Command.LOAD):
                    m.d.sync += at.loaded.eq(at.load_next == self._identity.load_bytes)
            m.next = "FRAME"
