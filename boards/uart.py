"""An 8N1 UART: a receiver that reports framing errors and overruns, and a transmitter."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from onespike.errors import OnespikeError
from onespike.hdl.streams import refuse

__all__ = ["UARTReceiver", "UARTTransmitter", "divisor_for"]


def divisor_for(clock_hz: int, baud: int) -> int:
    """Clock cycles per bit; refuses a baud rate the clock cannot make within 2 %."""
    divisor = round(clock_hz / baud)
    if divisor < 4:
        raise OnespikeError(f"{baud} baud is too fast for a {clock_hz / 1e6:g} MHz clock "
                            f"(fewer than 4 cycles per bit); lower --baud")
    error = abs(clock_hz / divisor - baud) / baud
    if error > 0.02:
        raise OnespikeError(f"{baud} baud is {error:.1%} off at {clock_hz / 1e6:g} MHz "
                            f"(at most 2 % works); pick a baud rate that divides the clock")
    return divisor


class _Timed(wiring.Component):
    """A UART side clocked at ``divisor`` cycles per bit."""

    def __init__(self, *, divisor: int):
        if divisor < 4:
            refuse(self, ValueError(f"UART divisor must be at least 4, not {divisor}"))
        self._divisor = divisor
        super().__init__()

    @property
    def divisor(self):
        return self._divisor


class UARTReceiver(_Timed):
    """Receives 8N1 bytes on ``rx`` (idle high), sampling each bit in its middle.

    ``o`` holds one received byte until taken. ``framing`` pulses for one cycle when a stop
    bit is low (the byte is dropped); ``overrun`` pulses when a byte completes while ``o``
    still holds the previous one (the new byte is dropped).
    """
    rx: In(1, init=1)
    o: Out(stream.Signature(8))
    framing: Out(1)
    overrun: Out(1)

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.rx_sync = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(self._divisor))
        bits = Signal(range(8))
        shift = Signal(8)
        m.d.sync += [self.framing.eq(0), self.overrun.eq(0)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(self._divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(self._divisor - 1), bits.eq(0)]
                    with m.If(rx):      # a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shift.eq(shift[1:] | (rx << 7)), timer.eq(self._divisor - 1),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(~rx):
                        m.d.sync += self.framing.eq(1)
                        m.next = "BREAK"
                    with m.Elif(self.o.valid & ~self.o.ready):
                        m.d.sync += self.overrun.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                        m.next = "IDLE"
            with m.State("BREAK"):    # wait for the line to go idle again
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTransmitter(_Timed):
    """Sends each byte of ``i`` as 8N1 on ``tx``."""
    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self._divisor))
        shift = Signal(10, init=0x3FF)   # stop bit, 8 data bits LSB first, start bit
        left = Signal(range(11))
        m.d.comb += [self.tx.eq(shift[0]), self.i.ready.eq(left == 0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [shift.eq((self.i.payload << 1) | (1 << 9)), left.eq(10),
                         timer.eq(self._divisor - 1)]
        with m.Elif(left != 0):
            with m.If(timer == 0):
                m.d.sync += [shift.eq(shift[1:] | (1 << 9)), left.eq(left - 1),
                             timer.eq(self._divisor - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m
