"""The UART host link in Amaranth's simulator: real bit-level frames on ``rx``/``tx``,
answers checked against the golden model, and every fault path answered."""

import numpy as np
import pytest

from helpers import (CLOCK_HZ, DIVISOR, TIMEOUT, infer, infer_spikes, new_link, random_dense,
                     run_link)
from onespike.boards import protocol as proto
from onespike.boards.link import SampleBuffer
from onespike.sim import closed_form, random_inputs, random_recurrent_network
from onespike.sim.observed import window_steps


@pytest.fixture(scope="module")
def small():
    return random_dense(3, layers=3, width=10, samples=4)


@pytest.mark.parametrize("coding", ["ttfs", "dense"])
def test_identify_infer_and_spikes_match_the_golden_model(small, coding):
    """The TTFS accelerator and the dense baseline behind the same link give the same
    answers: the dense one's activations come back as the steps their spikes would take."""
    net, a0 = small
    link = new_link(net, coding=coding)
    golden = closed_form(net, a0)

    async def script(ctx, line):
        await line.send(ctx, proto.frame(proto.HOST_SYNC, proto.Command.IDENTIFY))
        answers = [await line.reply(ctx)]
        for k, a in enumerate(a0):
            await line.send(ctx, (infer_spikes if k % 2 else infer)(a.reshape(-1)))
            answers.append(await line.reply(ctx))
        return answers

    answers = run_link(link, script)
    kind, payload = answers[0]
    assert kind == proto.Reply.IDENTITY
    identity = proto.Identity.unpack(payload)
    assert identity == proto.Identity.of(net, clock_hz=CLOCK_HZ)
    for k, (kind, payload) in enumerate(answers[1:]):
        assert kind == (proto.Reply.SPIKES if k % 2 else proto.Reply.RESULT)
        cls, logits, steps = proto.decode_result(payload, identity, spikes=bool(k % 2))
        assert cls == golden.classes[k]
        assert logits == list(golden.logits[k])
        if k % 2:
            np.testing.assert_array_equal(steps, window_steps(net, golden.times[-1][k], -1)
                                          .reshape(-1))


def test_every_fault_is_answered_and_the_link_recovers(small):
    net, a0 = small
    link = new_link(net)
    golden = closed_form(net, a0)
    good = infer_spikes(a0[0].reshape(-1))
    corrupt = bytearray(good)
    corrupt[5] ^= 0x01                      # one payload bit flipped: crc mismatch
    too_high = bytearray(infer(a0[1].reshape(-1)))
    too_high[4] = net.encoder.levels + 1
    too_high[-1] = proto.crc8(too_high[1:-1])

    async def script(ctx, line):
        out = []
        for data, kwargs in [
                (bytes(corrupt), {}),
                (good[:len(good) // 2], {}),                                  # stops
                (good, {"bad_stop_at": 6}),                                   # framing
                (bytes(too_high), {}),
                (proto.frame(proto.HOST_SYNC, ord("Q")), {}),                 # unknown
                (proto.frame(proto.HOST_SYNC, proto.Command.INFER, b"\0"), {}),  # length
                (proto.frame(proto.HOST_SYNC, proto.Command.LOAD, bytes(6)), {}),  # no load
        ]:
            await line.send(ctx, data, **kwargs)
            out.append(await line.reply(ctx))
            await line.send(ctx, good)
            out.append(await line.reply(ctx))
        # bytes sent while the board answers are reported after the answer
        await line.send(ctx, good)
        await ctx.tick().repeat(DIVISOR * 10 * 3)    # the answer has started
        await line.send(ctx, b"\xA5\x00")
        out.append(await line.reply(ctx))
        out.append(await line.reply(ctx))
        await ctx.tick().repeat(TIMEOUT * 2)
        await line.send(ctx, good)
        out.append(await line.reply(ctx))
        return out

    out = run_link(link, script)
    faults = [proto.Fault.CHECKSUM, proto.Fault.TIMEOUT, proto.Fault.FRAMING,
              proto.Fault.RANGE, proto.Fault.COMMAND, proto.Fault.LENGTH,
              proto.Fault.COMMAND]
    identity = proto.Identity.of(net, clock_hz=CLOCK_HZ)
    for k, fault in enumerate(faults):
        assert out[2 * k] == (proto.Reply.ERROR, bytes([fault])), f"case {k}"
        kind, payload = out[2 * k + 1]
        assert kind == proto.Reply.SPIKES, f"no recovery after {fault.name}"
        cls, logits, _ = proto.decode_result(payload, identity, spikes=True)
        assert (cls, logits) == (golden.classes[0], list(golden.logits[0]))
    assert out[-3][0] == proto.Reply.SPIKES
    assert out[-2] == (proto.Reply.ERROR, bytes([proto.Fault.OVERRUN]))
    assert out[-1][0] == proto.Reply.SPIKES


@pytest.mark.parametrize("seed", [5, 7])
def test_a_sequence_network_answers_each_sequence_like_the_golden_model(seed):
    """A recurrent network behind the link: an INFER frame carries a whole sequence (steps
    × features activations, C order), its answer the class, logits and last hidden spikes
    of that sequence. The steps these networks take are slower than the UART's bytes (the
    link overran before its sample buffer)."""
    rng = np.random.default_rng(seed)
    net = random_recurrent_network(rng, max_steps=6, max_width=10)
    a0 = random_inputs(rng, net, 3)
    assert net.steps > 1 and a0.shape[1:] == net.encoder.sample_shape
    identity = proto.Identity.of(net, clock_hz=CLOCK_HZ)
    assert identity.inputs == net.steps * int(np.prod(net.encoder.shape))
    golden = closed_form(net, a0)

    async def script(ctx, line):
        answers = []
        for k, a in enumerate(a0):
            await line.send(ctx, (infer_spikes if k % 2 else infer)(a.reshape(-1)))
            answers.append(await line.reply(ctx))
        return answers

    for k, (kind, payload) in enumerate(run_link(new_link(net), script)):
        assert kind == (proto.Reply.SPIKES if k % 2 else proto.Reply.RESULT), (k, payload)
        cls, logits, steps = proto.decode_result(payload, identity, spikes=bool(k % 2))
        assert (cls, logits) == (golden.classes[k], list(golden.logits[k])), f"sample {k}"
        if k % 2:
            np.testing.assert_array_equal(steps, window_steps(net, golden.times[-1][k], -1)
                                          .reshape(-1))


def test_a_sample_buffer_needs_a_positive_depth():
    with pytest.raises(ValueError, match="^Buffer depth must be a positive integer, not 0$"):
        SampleBuffer(levels=3, depth=0)
