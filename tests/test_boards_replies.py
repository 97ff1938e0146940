"""The link's replies in Amaranth's simulator: logits and spike steps recorded from taps and
sent as RESULT/SPIKES bodies, forgotten after they are sent and after an ERROR; IDENTITY,
ERROR and LOADED bodies; requests paced with idle cycles, header and body with
backpressure."""

import struct

import pytest

from helpers import pacings, run_components, stream_get, stream_put
from onespike.boards import protocol as proto
from onespike.boards.replies import Replies
from onespike.hdl.mac import value_layout
from onespike.hdl.streams import logit_layout, spike_layout

R = proto.Reply
IDENTITY = proto.Identity(version=proto.VERSION, checksum=0x12345678, inputs=4, levels=7,
                          classes=3, logit_bytes=2, spiking=5, load_bytes=64, loaded=False,
                          clock_hz=12_000_000)
LEVELS = 4           # of the last spiking layer: steps 0..3
LOGITS = [300, -5, 0x7FF]
NONE = proto.NO_SPIKE_STEP


def new_replies(coding="ttfs", kind=Replies):
    tap = spike_layout if coding == "ttfs" else value_layout
    return kind(IDENTITY, logit_shape=logit_layout(IDENTITY.classes, 12),
                spike_shape=tap((IDENTITY.spiking,), LEVELS),
                spike_map=(IDENTITY.spiking,), levels=LEVELS)


class OneStepLate(Replies):
    """Planted fault: the dense baseline's activation ``a`` recorded as step ``A − a + 1``."""

    def _recorded(self, payload):
        entry, fires = super()._recorded(payload)
        return entry + 1, fires


def result_body(cls, steps=None):
    body = bytes([cls]) + b"".join(v.to_bytes(2, "little", signed=True) for v in LOGITS)
    return body + (struct.pack(f"<{len(steps)}H", *steps) if steps is not None else b"")


async def tap(ctx, port, payloads):
    for payload in payloads:
        ctx.set(port.valid, 1)
        ctx.set(port.payload, payload)
        await ctx.tick()
    ctx.set(port.valid, 0)


def answer(script, pace, dut=None):
    """Run ``script(ctx, dut)`` (taps and requests) while a sender takes each frame: its
    body bytes, then its header. Returns the frames sent, (kind, body)."""
    dut = dut or new_replies()
    frames = []

    async def sender(ctx):
        while True:
            while not ctx.get(dut.header.valid):
                await ctx.tick()
            header = ctx.get(dut.header.payload)
            body = await stream_get(ctx, dut.body, header.length, rng=pace)
            assert ctx.get(dut.header.valid) and ctx.get(dut.header.payload) == header
            assert ctx.get(dut.i.valid) and not ctx.get(dut.i.ready)   # taken after it
            ctx.set(dut.header.ready, 1)
            await ctx.tick()
            ctx.set(dut.header.ready, 0)
            frames.append((header.kind, bytes(body)))

    async def main(ctx):
        await ctx.tick().repeat(2 * IDENTITY.spiking)      # forgets the steps after reset
        await script(ctx, dut)

    run_components(dut, main, sender)
    return frames


def request(kind, *, fault=proto.Fault.NONE, cls=0, loaded=0):
    return [{"kind": kind, "fault": fault, "cls": cls, "loaded": loaded}]


def spikes(*neuron_steps, end=(0, 3)):
    """Tap payloads: spikes (neuron, step), then end-of-step markers (never recorded)."""
    return [{"index": n, "step": s, "end": 0} for n, s in neuron_steps] + \
           [{"index": 4, "step": s, "end": 1} for s in end]


@pytest.mark.parametrize("pace", pacings(6))
def test_result_and_spikes_bodies_from_the_taps(pace):
    async def script(ctx, dut):
        await tap(ctx, dut.tap_logits, [{"index": k, "value": v, "last": k == 2}
                                        for k, v in enumerate(LOGITS)])
        ctx.set(dut.capture, 1)
        await tap(ctx, dut.tap_steps, spikes((1, 2), (3, 0), (0, 3)))
        ctx.set(dut.capture, 0)
        await tap(ctx, dut.tap_steps, spikes((4, 1)))       # not captured
        await stream_put(ctx, dut.i, request(R.SPIKES, cls=2), rng=pace)
        await stream_put(ctx, dut.i, request(R.SPIKES, cls=1), rng=pace)
        await stream_put(ctx, dut.i, request(R.RESULT, cls=0), rng=pace)

    assert answer(script, pace) == [(R.SPIKES, result_body(2, [3, 2, NONE, 0, NONE])),
                                    (R.SPIKES, result_body(1, [NONE] * 5)),   # forgotten
                                    (R.RESULT, result_body(0))]


def activations(*neuron_values, end=(0, 3)):
    """The dense baseline's tap payloads: activations, then end-of-map markers."""
    return [{"index": n, "value": v, "end": 0} for n, v in neuron_values] + \
           [{"index": 4, "value": 0, "end": 1} for _ in end]


@pytest.mark.parametrize("kind", [Replies, OneStepLate], ids=["as built", "one step late"])
def test_dense_activations_come_back_as_spike_steps(kind):
    """Activation ``a`` of the dense baseline is reported as the step ``A − a`` its spike
    takes in the TTFS accelerator (the same bytes); a zero activation, as no spike."""
    async def script(ctx, dut):
        await tap(ctx, dut.tap_logits, [{"index": k, "value": v, "last": k == 2}
                                        for k, v in enumerate(LOGITS)])
        ctx.set(dut.capture, 1)
        await tap(ctx, dut.tap_steps, activations((1, 2), (3, 4), (0, 1), (2, 0)))
        ctx.set(dut.capture, 0)
        await stream_put(ctx, dut.i, request(R.SPIKES, cls=2))

    frames = answer(script, None, new_replies("dense", kind))
    expected = [(R.SPIKES, result_body(2, [3, 2, NONE, 0, NONE]))]
    assert (frames == expected) == (kind is Replies), frames


@pytest.mark.parametrize("pace", pacings(7))
def test_error_forgets_the_steps_identity_and_loaded(pace):
    async def script(ctx, dut):
        await tap(ctx, dut.tap_logits, [{"index": k, "value": v, "last": k == 2}
                                        for k, v in enumerate(LOGITS)])
        ctx.set(dut.capture, 1)
        await tap(ctx, dut.tap_steps, spikes((0, 1), (4, 2)))
        ctx.set(dut.capture, 0)
        await stream_put(ctx, dut.i, request(R.ERROR, fault=proto.Fault.CHECKSUM), rng=pace)
        await stream_put(ctx, dut.i, request(R.SPIKES, cls=1), rng=pace)
        await stream_put(ctx, dut.i, request(R.IDENTITY, loaded=1), rng=pace)
        await stream_put(ctx, dut.i, request(R.IDENTITY, loaded=0), rng=pace)
        await stream_put(ctx, dut.i, request(R.LOADED), rng=pace)

    loaded = proto.Identity(**{**IDENTITY.__dict__, "loaded": True})
    assert answer(script, pace) == [(R.ERROR, bytes([proto.Fault.CHECKSUM])),
                                    (R.SPIKES, result_body(1, [NONE] * 5)),
                                    (R.IDENTITY, loaded.pack()),
                                    (R.IDENTITY, IDENTITY.pack()),
                                    (R.LOADED, b"")]
