"""The link's command handler in Amaranth's simulator, fed frame events: a model
accelerator behind ``activations``/``result``, every reply request, every fault, run-time
weight loads and their roll-back; streams paced with idle cycles and backpressure."""

import dataclasses
import struct

import pytest

from helpers import pacings, run_components, stream_get, stream_put
from onespike.boards import protocol as proto
from onespike.boards.commands import CommandHandler
from onespike.boards.frames import FrameEvent

C, E, F, R = proto.Command, FrameEvent, proto.Fault, proto.Reply
IDENTITY = proto.Identity(version=proto.VERSION, checksum=1, inputs=4, levels=7, classes=3,
                          logit_bytes=2, spiking=5, load_bytes=0, loaded=True, clock_hz=1)


def frame(kind, payload=b"", *, length=None, end=F.NONE, broken=None):
    """The events of one frame; ``broken``: the line breaks after that many bytes."""
    events = [{"event": E.HEADER, "kind": kind,
               "length": len(payload) if length is None else length}]
    events += [{"event": E.BYTE, "kind": kind, "byte": b} for b in payload[:broken]]
    if broken is None:
        return events + [{"event": E.END, "kind": kind, "fault": end}]
    return events + [{"event": E.BROKEN, "kind": kind, "fault": F.TIMEOUT}]


def handle(identity, frames, pace):
    """Run the frames' events through a CommandHandler; returns the replies (kind, fault,
    class, loaded), the activations fed (value, capture) and the load bus writes."""
    dut = CommandHandler(identity)
    replies, fed, writes, aborts = [], [], [], []

    async def accelerator(ctx):       # class: the sum of the sample's values, modulo 3
        values = []
        while True:
            if len(values) == identity.inputs:
                ctx.set(dut.result.valid, 1)
                ctx.set(dut.result.payload, {"index": sum(values) % 3})
                while not (await ctx.tick().sample(dut.result.ready))[-1]:
                    pass
                ctx.set(dut.result.valid, 0)
                values = []
            ready = pace is None or pace.random() >= 0.3
            ctx.set(dut.activations.ready, ready)
            *_, valid, value, capture, abort, written, address, byte = await ctx.tick().sample(
                dut.activations.valid, dut.activations.payload.value, dut.capture,
                dut.abort, dut.load.valid, dut.load.address, dut.load.byte)
            if abort:
                values = []
                aborts.append(len(replies))
            elif valid and ready:
                values.append(value)
                fed.append((value, capture))
            if written:
                writes.append((address, byte))

    async def host(ctx):
        for events in frames:
            await stream_put(ctx, dut.i, events, rng=pace)
        await ctx.tick().repeat(2)

    async def sender(ctx):
        while True:
            reply, = await stream_get(ctx, dut.reply, 1, rng=pace)
            replies.append((reply.kind, reply.fault, reply.cls, reply.loaded))

    run_components(dut, host, accelerator, sender)
    return replies, fed, writes, aborts


@pytest.mark.parametrize("pace", pacings(8))
def test_commands_are_carried_out_and_faults_answered(pace):
    frames = [frame(C.IDENTIFY), frame(C.IDENTIFY, b"\0"), frame(ord("Q")),
              frame(C.INFER, bytes([1, 7, 0, 3])),
              frame(C.INFER_SPIKES, bytes([2, 8, 1, 0])),            # 8 > A: clipped
              frame(C.INFER_SPIKES, bytes([1, 1, 1, 2])),
              frame(C.INFER, bytes([5, 5, 5, 5]), end=F.CHECKSUM),
              frame(C.INFER, bytes([4, 4, 4, 4]), broken=2),
              frame(C.INFER, bytes([1, 2, 3])),
              frame(C.LOAD, bytes(6)), frame(C.INFER, bytes([0, 0, 0, 2]))]
    replies, fed, writes, aborts = handle(IDENTITY, frames, pace)
    assert replies == [(R.IDENTITY, F.NONE, 0, 1), (R.ERROR, F.LENGTH, 0, 1),
                       (R.ERROR, F.COMMAND, 0, 1), (R.RESULT, F.NONE, 11 % 3, 1),
                       (R.ERROR, F.RANGE, 10 % 3, 1), (R.SPIKES, F.NONE, 5 % 3, 1),
                       (R.ERROR, F.CHECKSUM, 20 % 3, 1), (R.ERROR, F.TIMEOUT, 20 % 3, 1),
                       (R.ERROR, F.LENGTH, 20 % 3, 1), (R.ERROR, F.COMMAND, 20 % 3, 1),
                       (R.RESULT, F.NONE, 2, 1)]
    assert fed == [(v, 0) for v in [1, 7, 0, 3]] + [(v, 1) for v in [2, 7, 1, 0, 1, 1, 1, 2]] \
        + [(v, 0) for v in [5, 5, 5, 5, 4, 4, 0, 0, 0, 2]]
    assert aborts == [7] and writes == []


def load(offset, data, **kwargs):
    return frame(C.LOAD, struct.pack("<I", offset) + bytes(data), **kwargs)


@pytest.mark.parametrize("pace", pacings(9))
def test_weights_load_in_order_and_faulty_frames_roll_back(pace):
    identity = dataclasses.replace(IDENTITY, load_bytes=8, loaded=False)
    frames = [frame(C.INFER, bytes(4)), load(0, [10, 11, 12, 13, 14]),
              frame(C.IDENTIFY), load(6, [16]),                        # a gap
              load(5, [15, 16, 17], end=F.CHECKSUM),                   # written, rolled back
              load(5, [15, 16, 17, 18]),                               # past the end
              load(5, [15, 16, 17], broken=6), frame(C.LOAD, b"\0\0"),
              load(5, [25, 26, 27]), frame(C.INFER, bytes([1, 0, 0, 0])),
              load(0, [30]), frame(C.IDENTIFY)]                        # offset 0: over
    # ``loaded`` of a request is the flag before the frame's own LOAD counts
    replies, fed, writes, _ = handle(identity, frames, pace)
    assert replies == [(R.ERROR, F.NOT_LOADED, 0, 0), (R.LOADED, F.NONE, 0, 0),
                       (R.IDENTITY, F.NONE, 0, 0), (R.ERROR, F.RANGE, 0, 0),
                       (R.ERROR, F.CHECKSUM, 0, 0), (R.ERROR, F.RANGE, 0, 0),
                       (R.ERROR, F.TIMEOUT, 0, 0), (R.ERROR, F.LENGTH, 0, 0),
                       (R.LOADED, F.NONE, 0, 0), (R.RESULT, F.NONE, 1, 1),
                       (R.LOADED, F.NONE, 1, 0), (R.IDENTITY, F.NONE, 1, 0)]
    assert writes == [(a, 10 + a) for a in range(5)] + [(5, 15), (6, 16), (7, 17)] * 2 + \
        [(5, 15), (6, 16)] + [(5, 25), (6, 26), (7, 27), (0, 30)]
    assert fed == [(1, 0), (0, 0), (0, 0), (0, 0)]
