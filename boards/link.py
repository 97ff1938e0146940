"""The board-agnostic part of a board top: UART, the host-link protocol and the accelerator.

:class:`LinkedAccelerator` has two pins, ``rx`` and ``tx``, and speaks the frames of
:mod:`onespike.boards.protocol`. Input bytes go straight into the accelerator as they arrive
(no frame buffer). A frame whose checksum or values are wrong still completes its inference,
whose result is thrown away; a frame that breaks half-way (framing error, overrun, timeout)
resets the accelerator through the same ``rst`` path the mid-inference reset tests cover.
Either way the host gets an ``ERROR`` answer.
"""

import struct

from amaranth.hdl import Array, Cat, Const, Module, Mux, ResetInserter, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from onespike.boards import protocol as proto
from onespike.boards.uart import UARTReceiver, UARTTransmitter
from onespike.hdl.streams import flat_index, refuse
from onespike.hdl.top import Accelerator

__all__ = ["LinkedAccelerator", "LoadSignature"]

LOADED_AT = struct.calcsize(proto.Identity.FORMAT[:-2])   # the ``loaded`` byte of IDENTITY


class LoadSignature(wiring.Signature):
    """Run-time weight bytes from the host: ``valid`` for one cycle per byte, ``address``
    counts bytes from 0 in the order of the build's load image."""

    def __init__(self, size: int):
        super().__init__({"valid": Out(1), "address": Out(range(max(size, 2))),
                          "byte": Out(8)})


def crc8_next(crc, byte):
    """:func:`onespike.boards.protocol.crc8_update` as logic."""
    bits = [crc[i] ^ byte[i] for i in range(8)]
    for _ in range(8):
        top = bits[7]
        bits = [top] + bits[:7]
        bits[1] = bits[1] ^ top
        bits[2] = bits[2] ^ top
    return Cat(*bits)


class LinkedAccelerator(wiring.Component):
    """An :class:`~onespike.hdl.top.Accelerator` behind a UART host link.

    Ports: ``rx`` (in, idle high), ``tx`` (out), ``busy`` (high while a frame is received
    or answered), ``fault`` (high from an ``ERROR`` answer until the next other answer),
    ``load`` (run-time weight bytes for the board's memories; idle when ``load_bytes`` is 0).

    ``divisor``: clock cycles per UART bit; ``timeout``: cycles without a byte that end a
    half-received frame; ``load_bytes``: run-time weight bytes the host must LOAD before
    INFER is accepted; ``clock_hz`` is reported in IDENTITY.
    """
    def __init__(self, net, *, lanes=1, divisor, timeout, clock_hz, load_bytes=0):
        if timeout < 20 * divisor:
            refuse(self, ValueError(f"timeout of {timeout} cycles is shorter than two bytes "
                             f"({20 * divisor} cycles)"))
        self.accelerator = Accelerator(net, lanes=lanes)
        self._net = net
        self._divisor, self._timeout, self._load_bytes = divisor, timeout, load_bytes
        self._identity = proto.Identity.of(net, clock_hz=clock_hz, load_bytes=load_bytes,
                                           loaded=load_bytes == 0)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1),
                          "fault": Out(1), "load": Out(LoadSignature(load_bytes))})

    @property
    def net(self):
        return self._net

    @property
    def divisor(self):
        """Clock cycles per UART bit."""
        return self._divisor

    @property
    def identity(self):
        """The IDENTITY this link sends after power-up."""
        return self._identity

    def elaborate(self, platform):
        m = Module()
        net, ident, acc = self._net, self._identity, self.accelerator
        m.submodules.rx = rx = UARTReceiver(divisor=self._divisor)
        m.submodules.tx = tx = UARTTransmitter(divisor=self._divisor)
        abort = Signal()
        m.submodules.accelerator = ResetInserter(abort)(acc)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]
        lb, classes, spiking = ident.logit_bytes, ident.classes, ident.spiking
        lengths = proto.reply_lengths(ident)
        result_len = lengths[proto.Reply.RESULT]

        # -- reception state --------------------------------------------------------------
        byte = rx.o.payload
        got = Signal()
        m.d.comb += got.eq(rx.o.valid & rx.o.ready)
        kind = Signal(8)
        length = Signal(16)
        count = Signal(16)         # payload bytes received
        crc = Signal(8)
        fault = Signal(8)          # first fault of this frame (Fault), 0: none
        dropped = Signal()         # bytes arrived while answering
        quiet = Signal(range(self._timeout + 1))   # cycles since the last byte
        with m.If(rx.o.valid):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != self._timeout):
            m.d.sync += quiet.eq(quiet + 1)
        silent = (quiet == self._timeout) & ~rx.o.valid

        feeding = Signal()         # this frame's payload goes to the accelerator
        pending = Signal()         # acc.i holds an activation not taken yet
        taken = acc.i.valid & acc.i.ready
        m.d.comb += acc.i.valid.eq(pending)
        with m.If(taken):
            m.d.sync += pending.eq(0)

        loaded = Signal(init=self._load_bytes == 0)
        load_next = Signal(32)     # the next run-time weight byte
        load_start = Signal(32)    # load_next when this frame began
        offset = Signal(32)
        m.d.comb += [self.load.address.eq(load_next), self.load.byte.eq(byte)]

        def set_fault(code):
            with m.If(fault == 0):
                m.d.sync += fault.eq(code)

        def answer(reply_kind):
            m.d.sync += [reply.eq(reply_kind), sent.eq(0), out_crc.eq(0)]
            m.next = "SEND_HEADER"

        def break_frame(code):
            m.d.sync += [fault.eq(code), feeding.eq(0), pending.eq(0),
                         capture.eq(0), load_next.eq(load_start)]
            m.d.comb += abort.eq(1)
            m.next = "DRAIN"

        def watch_line(timeout=True):
            with m.If(rx.framing):
                break_frame(proto.Fault.FRAMING)
            with m.Elif(rx.overrun):
                break_frame(proto.Fault.OVERRUN)
            if timeout:
                with m.Elif(silent):
                    break_frame(proto.Fault.TIMEOUT)

        def refuse_bytes():
            """While answering, bytes are not read: they are reported after the answer."""
            m.d.comb += rx.o.ready.eq(1)
            with m.If(got | rx.overrun | rx.framing):
                m.d.sync += dropped.eq(1)

        # -- result capture -------------------------------------------------------------
        m.submodules.logits = logits = memory.Memory(shape=signed(8 * lb), depth=classes,
                                                     init=[])
        logit_write, logit_read = logits.write_port(), logits.read_port()
        m.d.comb += [logit_write.addr.eq(acc.tap_logits.payload.index),
                     logit_write.data.eq(acc.tap_logits.payload.value),
                     logit_write.en.eq(acc.tap_logits.valid)]
        result_class = Signal(8)
        capture = Signal()         # record the last spiking layer's steps (INFER_SPIKES)
        last = len(net.layers) - 1
        m.submodules.steps = steps = memory.Memory(          # step + 1 per neuron, 0: none
            shape=max(1, net.in_levels(last).bit_length()), depth=spiking, init=[])
        step_write = steps.write_port()
        step_read = steps.read_port(transparent_for=[step_write])
        neuron = Signal(range(max(spiking, 2)))
        tap = getattr(acc, f"tap_{last}")
        m.d.comb += [step_write.addr.eq(flat_index(tap.payload.index, net.layers[-1].in_shape)),
                     step_write.data.eq(tap.payload.step + 1),
                     step_write.en.eq(tap.valid & ~tap.payload.end & capture),
                     step_read.addr.eq(neuron)]

        # -- answer state ---------------------------------------------------------------
        reply = Signal(8)
        sent = Signal(16)          # bytes of the answer's header or body sent
        out_crc = Signal(8)
        reply_length = Signal(16)
        with m.Switch(reply):
            for k, n in lengths.items():
                with m.Case(k):
                    m.d.comb += reply_length.eq(n)
        logit_k = Signal(range(classes + 1))   # the logit being sent, and its byte
        logit_b = Signal(range(max(lb, 2)))
        m.d.comb += logit_read.addr.eq(logit_k)     # read long before the byte is sent
        logit_now = logit_read.data
        identity = [Const(b, 8) for b in ident.pack()]
        identity[LOADED_AT] = loaded
        identity = Array(identity)

        def send(value):
            m.d.comb += [tx.i.valid.eq(1), tx.i.payload.eq(value)]
            with m.If(tx.i.ready):
                m.d.sync += [out_crc.eq(crc8_next(out_crc, value)), sent.eq(sent + 1)]
            return tx.i.ready

        with m.FSM():
            with m.State("CLEAR"):       # forget the steps of a sample that was not answered
                m.d.comb += [step_write.addr.eq(neuron), step_write.data.eq(0),
                             step_write.en.eq(1)]
                m.d.sync += neuron.eq(neuron + 1)
                with m.If(neuron == spiking - 1):
                    m.d.sync += neuron.eq(0)
                    m.next = "SYNC"
            with m.State("SYNC"):
                m.d.comb += rx.o.ready.eq(1)
                m.d.sync += [fault.eq(0), crc.eq(0), count.eq(0),
                             load_start.eq(load_next)]
                with m.If(got & (byte == proto.HOST_SYNC)):
                    m.next = "KIND"
                watch_line(timeout=False)
            with m.State("KIND"):
                m.d.comb += [rx.o.ready.eq(1), self.busy.eq(1)]
                with m.If(got):
                    m.d.sync += [kind.eq(byte), crc.eq(crc8_next(crc, byte))]
                    m.next = "LENGTH_LOW"
                watch_line()
            with m.State("LENGTH_LOW"):
                m.d.comb += [rx.o.ready.eq(1), self.busy.eq(1)]
                with m.If(got):
                    m.d.sync += [length[:8].eq(byte), crc.eq(crc8_next(crc, byte))]
                    m.next = "LENGTH_HIGH"
                watch_line()
            with m.State("LENGTH_HIGH"):
                m.d.comb += [rx.o.ready.eq(1), self.busy.eq(1)]
                full = Cat(length[:8], byte)
                with m.If(got):
                    m.d.sync += [length[8:].eq(byte), crc.eq(crc8_next(crc, byte))]
                    with m.Switch(kind):
                        with m.Case(proto.Command.IDENTIFY):
                            with m.If(full != 0):
                                set_fault(proto.Fault.LENGTH)
                        with m.Case(proto.Command.INFER, proto.Command.INFER_SPIKES):
                            with m.If(full != ident.inputs):
                                set_fault(proto.Fault.LENGTH)
                            with m.Elif(~loaded):
                                set_fault(proto.Fault.NOT_LOADED)
                            with m.Else():
                                m.d.sync += [feeding.eq(1), capture.eq(
                                    kind == proto.Command.INFER_SPIKES)]
                        with m.Case(proto.Command.LOAD):
                            with m.If(self._load_bytes == 0):
                                set_fault(proto.Fault.COMMAND)
                            with m.Elif(full < 4):
                                set_fault(proto.Fault.LENGTH)
                        with m.Default():
                            set_fault(proto.Fault.COMMAND)
                    m.next = "PAYLOAD"
                    with m.If(full == 0):
                        m.next = "CHECK"
                watch_line()
            with m.State("PAYLOAD"):
                m.d.comb += [rx.o.ready.eq(1), self.busy.eq(1)]
                with m.If(got):
                    m.d.sync += [crc.eq(crc8_next(crc, byte)), count.eq(count + 1)]
                    with m.If(count == length - 1):
                        m.next = "CHECK"
                    with m.If(feeding):
                        with m.If(byte > ident.levels):
                            set_fault(proto.Fault.RANGE)
                        m.d.sync += [acc.i.payload.value.eq(Mux(byte > ident.levels,
                                                                ident.levels, byte)),
                                     pending.eq(1)]
                    if self._load_bytes:
                        with m.If((kind == proto.Command.LOAD) & (fault == 0)):
                            self._load_byte(m, count, byte, offset, load_next, loaded,
                                            set_fault)
                with m.If(got & feeding & pending & ~taken):
                    break_frame(proto.Fault.OVERRUN)   # the accelerator fell behind the UART
                watch_line()
            with m.State("CHECK"):
                m.d.comb += [rx.o.ready.eq(1), self.busy.eq(1)]
                with m.If(got):
                    with m.If(byte != crc):     # nothing else in a corrupt frame counts
                        m.d.sync += fault.eq(proto.Fault.CHECKSUM)
                    m.next = "DISPATCH"
                    with m.If(feeding):
                        m.next = "RESULT"          # the accelerator has the whole sample
                watch_line()
            with m.State("RESULT"):
                m.d.comb += [acc.o.ready.eq(1), self.busy.eq(1)]
                refuse_bytes()
                with m.If(acc.o.valid):
                    m.d.sync += [result_class.eq(acc.o.payload.index), feeding.eq(0)]
                    m.next = "DISPATCH"
            with m.State("DISPATCH"):
                m.d.comb += self.busy.eq(1)
                refuse_bytes()
                with m.If(fault != 0):
                    m.d.sync += load_next.eq(load_start)
                    answer(proto.Reply.ERROR)
                with m.Else():
                    with m.Switch(kind):
                        with m.Case(proto.Command.IDENTIFY):
                            answer(proto.Reply.IDENTITY)
                        with m.Case(proto.Command.INFER):
                            answer(proto.Reply.RESULT)
                        with m.Case(proto.Command.INFER_SPIKES):
                            answer(proto.Reply.SPIKES)
                        with m.Case(proto.Command.LOAD):
                            m.d.sync += loaded.eq(load_next == self._load_bytes)
                            answer(proto.Reply.LOADED)
            # -- sending: sync, kind, length, body, crc ---------------------------------
            with m.State("SEND_HEADER"):
                m.d.comb += self.busy.eq(1)
                refuse_bytes()
                header = Array([Const(proto.BOARD_SYNC, 8), reply, reply_length[:8],
                                reply_length[8:]])
                m.d.comb += [tx.i.valid.eq(1), tx.i.payload.eq(header[sent])]
                with m.If(tx.i.ready):
                    m.d.sync += sent.eq(sent + 1)
                    with m.If(sent != 0):
                        m.d.sync += out_crc.eq(crc8_next(out_crc, header[sent]))
                    with m.If(sent == 3):
                        m.d.sync += [sent.eq(0), self.fault.eq(reply == proto.Reply.ERROR),
                                     logit_k.eq(0), logit_b.eq(0)]
                        m.next = "SEND_BODY"
                        with m.If(reply_length == 0):
                            m.next = "SEND_CRC"
            with m.State("SEND_BODY"):
                m.d.comb += self.busy.eq(1)
                refuse_bytes()
                value = Signal(8)
                in_steps = sent >= result_len
                high = sent[0] ^ (result_len & 1)      # second byte of a neuron's step
                entry = step_read.data
                step = Mux(entry == 0, proto.NO_SPIKE_STEP, entry - 1)
                with m.Switch(reply):
                    with m.Case(proto.Reply.IDENTITY):
                        m.d.comb += value.eq(identity[sent])
                    with m.Case(proto.Reply.ERROR):
                        m.d.comb += value.eq(fault)
                    with m.Default():
                        m.d.comb += value.eq(
                            Mux(in_steps, Mux(high, step[8:16], step[:8]),
                                Mux(sent == 0, result_class, logit_now.word_select(logit_b, 8))))
                with m.If(send(value)):
                    with m.If((sent != 0) & ~in_steps):
                        m.d.sync += logit_b.eq(logit_b + 1)
                        with m.If(logit_b == lb - 1):
                            m.d.sync += [logit_b.eq(0), logit_k.eq(logit_k + 1)]
                    with m.If(in_steps & high):        # sent: clear it for the next sample
                        m.d.comb += [step_write.addr.eq(neuron), step_write.data.eq(0),
                                     step_write.en.eq(1)]
                        m.d.sync += neuron.eq(neuron + 1)
                    with m.If(sent == reply_length - 1):
                        m.next = "SEND_CRC"
            with m.State("SEND_CRC"):
                m.d.comb += self.busy.eq(1)
                refuse_bytes()
                m.d.comb += [tx.i.valid.eq(1), tx.i.payload.eq(out_crc)]
                with m.If(tx.i.ready):
                    m.d.sync += [neuron.eq(0), capture.eq(0)]
                    with m.If(dropped):
                        m.d.sync += [dropped.eq(0), fault.eq(proto.Fault.OVERRUN)]
                        m.next = "DRAIN"
                    with m.Elif(reply == proto.Reply.ERROR):
                        m.next = "CLEAR"
                    with m.Else():
                        m.next = "SYNC"
            with m.State("DRAIN"):       # skip the rest of a broken frame, then answer
                m.d.comb += [rx.o.ready.eq(1), self.busy.eq(1)]
                with m.If(silent):
                    answer(proto.Reply.ERROR)
        return m

    def _load_byte(self, m, count, byte, offset, load_next, loaded, set_fault):
        """One LOAD payload byte: 4 offset bytes (LE), then data written in order from
        ``load_next``; offset 0 starts the load over."""
        with m.If(count < 4):
            m.d.sync += offset.eq(Cat(offset[8:], byte))
            with m.If(count == 3):
                start = Cat(offset[8:], byte)
                with m.If(start == 0):
                    m.d.sync += [load_next.eq(0), loaded.eq(0)]
                with m.Elif(start != load_next):
                    set_fault(proto.Fault.RANGE)
        with m.Elif(load_next >= self._load_bytes):
            set_fault(proto.Fault.RANGE)
        with m.Else():
            m.d.comb += self.load.valid.eq(1)
            m.d.sync += load_next.eq(load_next + 1)
