"""The link's framing in Amaranth's simulator: FrameReceiver turns bytes into frame events
(good frames, bad checksums, frames that stop, line faults, bytes during an answer) and
FrameSender wraps replies in sync, length and crc8; every stream port paced with idle
cycles and backpressure."""

import pytest

from helpers import pacings, run_components, stream_get, stream_put
from onespike.boards import protocol as proto
from onespike.boards.frames import FrameEvent, FrameReceiver, FrameSender

TIMEOUT = 60
E, F = FrameEvent, proto.Fault


def events_of(frame_bytes):
    """The events FrameReceiver must give for the bytes of one frame."""
    kind, length = frame_bytes[1], int.from_bytes(frame_bytes[2:4], "little")
    payload, crc = frame_bytes[4:4 + length], frame_bytes[4 + length]
    good = crc == proto.crc8(frame_bytes[1:4 + length])
    return ([(E.HEADER, kind, length)] + [(E.BYTE, kind, b) for b in payload] +
            [(E.END, kind, F.NONE if good else F.CHECKSUM)])


def decoded(event):
    what = event.event
    value = {E.HEADER: event.length, E.BYTE: event.byte}.get(what, event.fault)
    return what, int(event.kind), value


async def send(ctx, dut, data, pace):
    """Send ``data``, then wait until its frame is answered (its last event taken)."""
    await stream_put(ctx, dut.i, data, rng=pace)
    await ctx.tick().until(~dut.busy)


def receive(script, *, count, pace):
    """Run ``script(ctx, dut)`` (it drives ``i`` and the line faults) while ``count`` events
    are taken from ``o``; returns them decoded."""
    dut = FrameReceiver(timeout=TIMEOUT)
    got = []

    async def sink(ctx):
        got.extend(decoded(e) for e in await stream_get(ctx, dut.o, count, rng=pace))

    async def source(ctx):
        await script(ctx, dut)

    run_components(dut, source, sink)
    assert len(got) == count
    return got


def test_receiver_rejects_a_bad_timeout():
    with pytest.raises(ValueError, match="^Timeout must be a positive integer, not 0$"):
        FrameReceiver(timeout=0)


@pytest.mark.parametrize("pace", pacings(1))
def test_receiver_gives_header_bytes_and_end_of_good_and_corrupt_frames(pace):
    good = proto.frame(proto.HOST_SYNC, proto.Command.INFER, bytes([3, 0, 7, 0xA5, 1]))
    empty = proto.frame(proto.HOST_SYNC, proto.Command.IDENTIFY)
    corrupt = bytearray(good)
    corrupt[6] ^= 0x20
    expected = events_of(good) + events_of(empty) + events_of(corrupt)

    async def script(ctx, dut):       # noise before a sync byte is skipped
        for data in [b"\x00\x13" + good, empty, bytes(corrupt)]:
            await send(ctx, dut, data, pace)

    assert receive(script, count=len(expected), pace=pace) == expected
    assert expected[-1] == (E.END, proto.Command.INFER, F.CHECKSUM)


@pytest.mark.parametrize("pace", pacings(2))
def test_receiver_breaks_a_frame_that_stops_or_is_shorter_than_its_length(pace):
    frame = proto.frame(proto.HOST_SYNC, proto.Command.LOAD, bytes(range(6)))
    short = bytearray(frame)
    short[2] = 9                      # says 9 bytes, brings 6 and a crc

    async def script(ctx, dut):
        for data in [frame[:5], bytes(short), frame]:
            await send(ctx, dut, data, pace)

    broken = (E.BROKEN, proto.Command.LOAD, F.TIMEOUT)
    expected = events_of(frame)[:2] + [broken] + \
        [(E.HEADER, proto.Command.LOAD, 9)] + events_of(frame)[1:-1] + \
        [(E.BYTE, proto.Command.LOAD, frame[-1]), broken] + \
        events_of(frame)
    assert receive(script, count=len(expected), pace=pace) == expected


@pytest.mark.parametrize("pace", pacings(3))
def test_receiver_drains_after_a_line_fault_then_reports_it(pace):
    frame = proto.frame(proto.HOST_SYNC, proto.Command.INFER, bytes([1, 2, 3]))

    async def script(ctx, dut):
        for fault in ["framing", "overrun"]:
            await stream_put(ctx, dut.i, frame[:5], rng=pace)
            ctx.set(getattr(dut, fault), 1)
            await ctx.tick()
            ctx.set(getattr(dut, fault), 0)
            await send(ctx, dut, frame[5:] + frame, pace)   # skipped
        await send(ctx, dut, frame, pace)

    head = events_of(frame)[:2]
    expected = head + [(E.BROKEN, proto.Command.INFER, F.FRAMING)] + \
        head + [(E.BROKEN, proto.Command.INFER, F.OVERRUN)] + events_of(frame)
    assert receive(script, count=len(expected), pace=pace) == expected


@pytest.mark.parametrize("pace", pacings(4))
def test_bytes_arriving_while_a_frame_is_answered_are_reported_after_it(pace):
    frame = proto.frame(proto.HOST_SYNC, proto.Command.IDENTIFY)
    dut = FrameReceiver(timeout=TIMEOUT)
    queue, got = bytearray(), []

    async def line(ctx):
        while True:
            if queue:
                await stream_put(ctx, dut.i, [queue.pop(0)], rng=pace)
            else:
                await ctx.tick()

    async def take(ctx, count):
        got.extend(decoded(e) for e in await stream_get(ctx, dut.o, count, rng=pace))

    async def host(ctx):
        queue.extend(frame)
        await take(ctx, 1)
        await ctx.tick().until(dut.o.valid)
        assert ctx.get(dut.busy)          # END waits for the answer...
        queue.extend(frame)               # ...and bytes arriving meanwhile are dropped
        await ctx.tick().repeat(3 * len(frame))
        assert not queue and ctx.get(dut.o.valid)
        await take(ctx, 2)
        queue.extend(frame)
        await take(ctx, 2)
        await ctx.tick()
        assert not ctx.get(dut.busy)

    run_components(dut, host, line)
    kind = proto.Command.IDENTIFY
    assert got == [(E.HEADER, kind, 0), (E.END, kind, F.NONE),
                   (E.BROKEN, kind, F.OVERRUN), (E.HEADER, kind, 0), (E.END, kind, F.NONE)]


@pytest.mark.parametrize("pace", pacings(5))
def test_sender_frames_each_reply_with_length_and_crc(pace):
    replies = [(proto.Reply.RESULT, bytes([4, 0xFF, 0x80, 0x5A, 0])),
               (proto.Reply.LOADED, b""), (proto.Reply.ERROR, bytes([proto.Fault.RANGE])),
               (proto.Reply.IDENTITY, bytes(k % 256 for k in range(300)))]     # length > 255
    expected = b"".join(proto.frame(proto.BOARD_SYNC, k, body) for k, body in replies)
    dut = FrameSender()
    out, header_taken = [], []

    async def headers(ctx):
        for kind, body in replies:
            await stream_put(ctx, dut.header, [{"kind": kind, "length": len(body)}], rng=pace)

    async def bodies(ctx):
        await stream_put(ctx, dut.body, b"".join(body for _, body in replies), rng=pace)

    async def line(ctx):
        while True:
            ready = pace is None or pace.random() >= 0.3
            ctx.set(dut.o.ready, ready)
            *_, valid, byte, taken = await ctx.tick().sample(
                dut.o.valid, dut.o.payload, dut.header.valid & dut.header.ready)
            if ready and valid:
                out.append(byte)
                header_taken.append(taken)

    run_components(dut, headers, bodies, line)
    assert bytes(out) == expected
    ends, end = [], 0                 # each header is taken with its frame's crc byte
    for _, body in replies:
        end += 5 + len(body)
        ends.append(end - 1)
    assert [n for n, taken in enumerate(header_taken) if taken] == ends
