"""The 8N1 UART in Amaranth's simulator: transmitter to receiver through a wire, bytes
taken with backpressure (an overrun when the receiver's byte is not taken in time), a
framing error on a low stop bit; baud rates a clock cannot make are refused."""

import pytest
from amaranth.hdl import Module

from helpers import bits_of, pacings, run_components, stream_get, stream_put
from onespike.boards.uart import UARTReceiver, UARTTransmitter, divisor_for
from onespike.errors import OnespikeError

DIVISOR = 5


def test_uart_rejects_impossible_baud_rates():
    assert divisor_for(12_000_000, 1_000_000) == 12
    with pytest.raises(OnespikeError, match="too fast"):
        divisor_for(12_000_000, 4_000_000)
    with pytest.raises(OnespikeError, match="off at 12 MHz"):
        divisor_for(12_000_000, 1_900_000)
    with pytest.raises(ValueError, match="^UART divisor must be at least 4, not 3$"):
        UARTReceiver(divisor=3)
    with pytest.raises(ValueError, match="^UART divisor must be at least 4, not 2$"):
        UARTTransmitter(divisor=2)


DATA = bytes([0x00, 0xFF, 0xA5, 0x5A, 0x01, 0x80]) + bytes(range(0, 256, 37))


def loopback(data, pace, rx_divisor=DIVISOR):
    """``data`` from a transmitter to a receiver (of ``rx_divisor``) through a wire: the
    bytes received and the (framing, overrun) flags seen."""
    m = Module()
    m.submodules.tx = tx = UARTTransmitter(divisor=DIVISOR)
    m.submodules.rx = rx = UARTReceiver(divisor=rx_divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    got, faults = [], []

    async def sender(ctx):
        await stream_put(ctx, tx.i, data, rng=pace)

    async def receiver(ctx):       # takes each byte within a byte time: no overrun
        got.extend(await stream_get(ctx, rx.o, len(data), rng=pace, stall=0.5))

    async def line(ctx):
        while True:
            *_, framing, overrun = await ctx.tick().sample(rx.framing, rx.overrun)
            if framing or overrun:
                faults.append((framing, overrun))

    run_components(m, receiver, sender, line)
    return bytes(got), faults


@pytest.mark.parametrize("pace", pacings(10))
def test_bytes_cross_the_wire_with_idle_gaps(pace):
    got, faults = loopback(DATA, pace)
    assert got == DATA and faults == []


def test_a_receiver_off_the_baud_rate_is_caught():
    """Planted fault: a receiver one clock per bit slow (20 %) drifts off the bits: wrong
    bytes, a framing error, or fewer bytes than were sent."""
    try:
        got, faults = loopback(DATA, pacings(1)[0], rx_divisor=DIVISOR + 1)
    except AssertionError as e:
        assert "did not finish" in str(e)
        return
    assert got != DATA or faults


def test_a_low_stop_bit_and_a_byte_not_taken_are_reported():
    rx = UARTReceiver(divisor=DIVISOR)
    seen = []

    async def line(ctx):
        while True:
            *_, framing, overrun = await ctx.tick().sample(rx.framing, rx.overrun)
            if framing or overrun:
                seen.append("framing" if framing else "overrun")

    async def bench(ctx):
        ctx.set(rx.rx, 1)
        for byte, stop in [(0x12, 0), (0x34, 1), (0x56, 1), (0x78, 1)]:
            await ctx.tick().repeat(3)
            for bit in bits_of(byte, stop=stop):
                ctx.set(rx.rx, bit)
                await ctx.tick().repeat(DIVISOR)
            ctx.set(rx.rx, 1)
            await ctx.tick().repeat(2 * DIVISOR)
            seen.append(ctx.get(rx.o.payload) if ctx.get(rx.o.valid) else None)
        assert (await stream_get(ctx, rx.o, 1)) == [0x34]      # the first whole byte kept

    run_components(rx, bench, line)
    assert seen == ["framing", None, 0x34, "overrun", 0x34, "overrun", 0x34]
