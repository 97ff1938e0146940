"""Board memory mapping: weights in (a behavioural model of) iCE40 SPRAM, loaded at run time
over the host link, then inferences equal to the golden model; the fit check."""

import struct

import numpy as np
import pytest

from onespike.boards import protocol as proto
from onespike.boards.build import fit
from onespike.boards.memories import (MemoryMapper, OnPlatform, SpramPlan,
                                     all_weights_in_spram, load_image)
from onespike.boards.platforms import board_named
from onespike.errors import OnespikeError
from onespike.sim import closed_form
from helpers import CLOCK_HZ, infer, new_link, random_dense, run_link


def test_weights_loaded_into_spram_at_run_time_give_golden_answers():
    net, a0 = random_dense(11, layers=3, width=10, samples=2)
    top, link, plan = all_weights_in_spram(
        lambda load_bytes: new_link(net, lanes=3, load_bytes=load_bytes), model=True)
    assert len(plan.entries) == len(net.layers)          # every weight memory moved
    image = load_image(plan)
    assert len(image) == plan.load_bytes
    golden = closed_form(net, a0)
    half = len(image) // 2

    def load(offset, data):
        return proto.frame(proto.HOST_SYNC, proto.Command.LOAD,
                           struct.pack("<I", offset) + data)

    async def script(ctx, line):
        out = []
        for frame in [proto.frame(proto.HOST_SYNC, proto.Command.IDENTIFY),
                      infer(a0[0].reshape(-1)),                  # not loaded yet
                      load(0, image[:half]),
                      load(half + 1, image[half + 1:]),          # a gap: refused
                      load(half, image[half:])[:-1] + b"\0",      # corrupt: rolled back
                      load(half, image[half:]),
                      proto.frame(proto.HOST_SYNC, proto.Command.IDENTIFY),
                      infer(a0[0].reshape(-1)), infer(a0[1].reshape(-1))]:
            await line.send(ctx, frame)
            out.append(await line.reply(ctx))
        return out

    out = run_link(link, script, top=top)
    before = proto.Identity.unpack(out[0][1])
    assert (before.load_bytes, before.loaded) == (len(image), False)
    assert out[1] == (proto.Reply.ERROR, bytes([proto.Fault.NOT_LOADED]))
    assert out[2] == (proto.Reply.LOADED, b"")
    assert out[3] == (proto.Reply.ERROR, bytes([proto.Fault.RANGE]))
    assert out[4] == (proto.Reply.ERROR, bytes([proto.Fault.CHECKSUM]))
    assert out[5] == (proto.Reply.LOADED, b"")
    assert proto.Identity.unpack(out[6][1]).loaded
    identity = proto.Identity.of(net, clock_hz=CLOCK_HZ, load_bytes=len(image))
    for k in range(2):
        cls, logits, _ = proto.decode_result(out[7 + k][1], identity)
        assert (cls, logits) == (golden.classes[k], list(golden.logits[k]))


def test_fit_plans_spram_on_icebreaker_and_refuses_what_cannot_fit(digits_mlp_net):
    net, _ = digits_mlp_net
    placed = fit(net, board_named("icebreaker"), 2)
    assert placed.spram_plan == SpramPlan(()) and placed.blocks <= 30   # digits fits in EBR
    assert set(placed.styles.values()) == {"block"}    # and spare EBR takes small ones
    assert not placed.sliced
    # at 1 lane the weights are 4096 and 640 rows deep: on ECP5 one block per bit
    assert fit(net, board_named("ulx3s-85f"), 1).sliced == {0, 1}
    assert not fit(net, board_named("ulx3s-85f"), 16).sliced      # 64 rows: no cascade
    with pytest.raises(OnespikeError, match=r"does not fit icebreaker: .* need about \d+ "
                                            r"EBR \(4 kbit\) blocks"):
        fit(net, board_named("icebreaker"), 16)
    with pytest.raises(OnespikeError, match="unknown board 'icebraker'"):
        board_named("icebraker")


def test_bit_sliced_weights_give_golden_answers():
    net, a0 = random_dense(13, layers=3, width=10, samples=2)
    link = new_link(net, lanes=3)
    golden = closed_form(net, a0)

    async def script(ctx, line):
        out = []
        for a in a0:
            await line.send(ctx, infer(a.reshape(-1)))
            out.append(await line.reply(ctx))
        return out

    out = run_link(link, script,
                   top=OnPlatform(link, MemoryMapper().configure(sliced=range(8))))
    identity = proto.Identity.of(net, clock_hz=CLOCK_HZ)
    for k, (kind, payload) in enumerate(out):
        assert kind == proto.Reply.RESULT
        cls, logits, _ = proto.decode_result(payload, identity)
        assert (cls, logits) == (golden.classes[k], list(golden.logits[k]))

