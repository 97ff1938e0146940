"""The board-agnostic part of a board top: UART, the host-link protocol and the accelerator.

:class:`LinkedAccelerator` has two pins, ``rx`` and ``tx``, and speaks the frames of
:mod:`onespike.boards.protocol`. Input bytes go straight into the accelerator as they arrive
(no frame buffer; if it falls a byte behind, the UART overruns and the frame breaks). A
frame whose checksum or values are wrong still completes its inference, whose result is
thrown away; a frame that breaks half-way (framing error, overrun, timeout) resets the
accelerator through the same ``rst`` path the mid-inference reset tests cover. Either way
the host gets an ``ERROR`` answer.

A sequence network's accelerator takes a sample as ``T`` windows, and its encoder holds one
sequence step per bank, not the whole sample: a slow step would hold the UART back and
overrun it. So the link of a sequence network puts a :class:`SampleBuffer` of one whole
``INFER`` payload (``T`` × features activations) between the handler and the accelerator;
the host sends the sequence at the line's speed and the accelerator takes it at its own.

The link is a chain of components joined by streams (what flows between them below)::

    UARTReceiver    --bytes, line faults--> FrameReceiver
    FrameReceiver   --frame events-->       CommandHandler <--activations, class--> Accelerator
    CommandHandler  --reply requests-->     Replies        <--taps--                Accelerator
    (a sequence network: CommandHandler --activations--> SampleBuffer --> Accelerator)
    Replies         --header, body-->       FrameSender    --bytes-->               UARTTransmitter

:class:`~.frames.FrameReceiver` parses and checks frames, :class:`~.commands.CommandHandler`
feeds the accelerator (activations in, class out), loads weights and decides each answer,
:class:`~.replies.Replies` records the accelerator's taps and writes the answers,
:class:`~.frames.FrameSender` frames them.
"""

from amaranth.hdl import Module, ResetInserter
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from onespike.boards import protocol as proto
from onespike.boards.commands import CommandHandler, LoadSignature
from onespike.boards.frames import FrameReceiver, FrameSender
from onespike.boards.replies import Replies
from onespike.boards.uart import UARTReceiver, UARTTransmitter
from onespike.errors import OnespikeError
from onespike.hdl.generate import CODINGS, accelerator
from onespike.hdl.streams import activation_layout, refuse

__all__ = ["LinkedAccelerator", "SampleBuffer", "LoadSignature", "CODINGS"]


class SampleBuffer(wiring.Component):
    """A first-in first-out buffer of ``depth`` input activations (``0..levels``), ``i``
    to ``o``: ``i`` is ready whenever fewer than ``depth`` are held, so a producer sending
    at most ``depth`` before it waits for an answer is never held back. Its storage is a
    memory with a synchronous read port (``fifo.storage``, block RAM on a board)."""

    def __init__(self, *, levels: int, depth: int):
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            refuse(self, ValueError(f"Buffer depth must be a positive integer, not "
                                    f"{depth!r}"))
        self._depth = depth
        layout = activation_layout(levels)
        super().__init__({"i": In(stream.Signature(layout)),
                          "o": Out(stream.Signature(layout))})

    @property
    def depth(self):
        return self._depth

    def elaborate(self, platform):
        m = Module()
        width = self.i.payload.shape().size
        m.submodules.fifo = queue = fifo.SyncFIFOBuffered(width=width, depth=self._depth)
        m.d.comb += [queue.w_data.eq(self.i.payload), queue.w_en.eq(self.i.valid),
                     self.i.ready.eq(queue.w_rdy),
                     self.o.payload.eq(queue.r_data), self.o.valid.eq(queue.r_rdy),
                     queue.r_en.eq(self.o.ready)]
        return m


class LinkedAccelerator(wiring.Component):
    """An :class:`~onespike.hdl.top.Accelerator` behind a UART host link.

    Ports: ``rx`` (in, idle high), ``tx`` (out), ``busy`` (high while a frame is received
    or answered), ``fault`` (high from an ``ERROR`` answer until the next other answer),
    ``load`` (run-time weight bytes for the board's memories; idle when ``load_bytes`` is 0).

    ``divisor``: clock cycles per UART bit; ``timeout``: cycles without a byte that end a
    half-received frame; ``load_bytes``: run-time weight bytes the host must LOAD before
    INFER is accepted; ``clock_hz`` is reported in IDENTITY. ``coding="dense"`` puts the
    dense baseline (:class:`~onespike.hdl.dense_top.DenseAccelerator`, multiplies from DSP
    blocks unless ``use_dsp=False``) behind the same link: the host sees the same answers,
    the last hidden layer's activations reported as the steps their spikes would take.
    ``firing``, ``membranes``: how the TTFS accelerator's hidden layers find their spikes
    and keep their membranes (:func:`onespike.hdl.generate.accelerator`).
    """
    def __init__(self, net, *, lanes=1, divisor, timeout, clock_hz, load_bytes=0,
                 coding="ttfs", use_dsp=True, firing="auto", membranes="dual",
                 encoder_banks=2):
        if timeout < 20 * divisor:
            refuse(self, ValueError(f"timeout of {timeout} cycles is shorter than two bytes "
                             f"({20 * divisor} cycles)"))
        if coding not in CODINGS:
            refuse(self, ValueError(f"coding must be one of {', '.join(CODINGS)}, not "
                                    f"{coding!r}"))
        try:
            self.accelerator = accelerator(net, lanes=lanes, coding=coding, use_dsp=use_dsp,
                                           firing=firing, membranes=membranes,
                                           encoder_banks=encoder_banks)
        except OnespikeError as e:
            refuse(self, e)
        self._net = net
        self._divisor, self._timeout = divisor, timeout
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
        net, acc = self._net, self.accelerator
        m.submodules.rx = rx = UARTReceiver(divisor=self._divisor)
        m.submodules.receiver = receiver = FrameReceiver(timeout=self._timeout)
        m.submodules.handler = handler = CommandHandler(self._identity)
        m.submodules.accelerator = ResetInserter(handler.abort)(acc)
        if net.steps is None:          # the encoder holds a whole sample
            wiring.connect(m, handler.activations, acc.i)
        else:
            buffer = SampleBuffer(levels=net.encoder.levels, depth=self._identity.inputs)
            m.submodules.buffer = ResetInserter(handler.abort)(buffer)
            wiring.connect(m, handler.activations, buffer.i)
            wiring.connect(m, buffer.o, acc.i)
        last = len(net.layers) - 1
        tap = getattr(acc, f"tap_{last}")
        m.submodules.replies = replies = Replies(
            self._identity, logit_shape=acc.tap_logits.payload.shape(),
            spike_shape=tap.payload.shape(), spike_map=net.layers[last].in_shape,
            levels=net.in_levels(last))
        m.submodules.sender = sender = FrameSender()
        m.submodules.tx = tx = UARTTransmitter(divisor=self._divisor)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx), self.busy.eq(receiver.busy),
                     receiver.framing.eq(rx.framing), receiver.overrun.eq(rx.overrun),
                     replies.capture.eq(handler.capture)]
        wiring.connect(m, rx.o, receiver.i)
        wiring.connect(m, receiver.o, handler.i)
        wiring.connect(m, acc.o, handler.result)
        wiring.connect(m, wiring.flipped(self.load), handler.load)
        wiring.connect(m, acc.tap_logits, replies.tap_logits)
        wiring.connect(m, tap, replies.tap_steps)
        wiring.connect(m, handler.reply, replies.i)
        wiring.connect(m, replies.header, sender.header)
        wiring.connect(m, replies.body, sender.body)
        wiring.connect(m, sender.o, tx.i)
        with m.If(replies.i.valid & replies.i.ready):
            m.d.sync += self.fault.eq(replies.i.payload.kind == proto.Reply.ERROR)
        return m
