"""The UART host link in Amaranth's simulator: real bit-level frames on ``rx``/``tx``,
answers checked against the golden model, and every fault path answered."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from onespike.boards import protocol as proto
from onespike.boards.link import LinkedAccelerator
from onespike.boards.uart import UARTReceiver, UARTTransmitter, divisor_for
from onespike.errors import OnespikeError
from onespike.ir import NO_SPIKE
from onespike.sim import closed_form
from onespike.sim.random_net import random_inputs, random_network

DIVISOR = 4
TIMEOUT = 200
CLOCK_HZ = 12_000_000


def bits_of(byte, *, stop=1):
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


class Line:
    """Drives ``rx`` and decodes ``tx`` of a simulated design, DIVISOR cycles per bit."""

    def __init__(self, rx, tx):
        self.rx, self.tx = rx, tx
        self.received = bytearray()

    async def send(self, ctx, data, *, bad_stop_at=None, gap=0):
        for k, byte in enumerate(data):
            for bit in bits_of(byte, stop=0 if k == bad_stop_at else 1):
                ctx.set(self.rx, bit)
                await ctx.tick().repeat(DIVISOR)
            ctx.set(self.rx, 1)
            if gap:
                await ctx.tick().repeat(gap)

    async def receiver(self, ctx):
        while True:
            await ctx.tick()
            if ctx.get(self.tx):
                continue
            await ctx.tick().repeat(DIVISOR // 2)     # middle of the start bit
            byte = 0
            for i in range(8):
                await ctx.tick().repeat(DIVISOR)
                byte |= ctx.get(self.tx) << i
            await ctx.tick().repeat(DIVISOR)
            assert ctx.get(self.tx) == 1, "stop bit of the board's byte is low"
            self.received.append(byte)

    async def reply(self, ctx, limit=200_000):
        """The next whole board frame: (kind, payload), checksum verified."""
        for _ in range(limit):
            data = bytes(self.received)
            if len(data) >= 4 and data[0] == proto.BOARD_SYNC:
                size = 5 + int.from_bytes(data[2:4], "little")
                if len(data) >= size:
                    del self.received[:size]
                    assert proto.crc8(data[1:size - 1]) == data[size - 1], "bad crc from board"
                    return data[1], data[4:size - 1]
            elif data and data[0] != proto.BOARD_SYNC:
                raise AssertionError(f"board sent {data!r}, not a frame")
            await ctx.tick()
        raise AssertionError("no answer from the board")


def run_link(link, script, *, top=None):
    """Run ``script(ctx, line)`` against ``link`` (inside ``top``, default the link alone);
    returns what it returns."""
    top = top or link
    m = Module()
    m.submodules.top = top
    sim = Simulator(m)
    sim.add_clock(1e-8)
    line = Line(top.rx, top.tx)
    result = {}

    async def bench(ctx):
        ctx.set(top.rx, 1)
        await ctx.tick().repeat(50)
        result["value"] = await script(ctx, line)

    sim.add_testbench(bench)
    sim.add_testbench(line.receiver, background=True)
    sim.run()
    assert "value" in result, "the script did not finish"
    return result["value"]


def infer(a):
    return proto.frame(proto.HOST_SYNC, proto.Command.INFER, bytes(int(v) for v in a))


def infer_spikes(a):
    return proto.frame(proto.HOST_SYNC, proto.Command.INFER_SPIKES, bytes(int(v) for v in a))


def random_dense(seed, *, layers, width, samples):
    """A small random dense network (3-bit activations) and integer inputs for it."""
    rng = np.random.default_rng(seed)
    net = random_network(rng, conv=False, max_layers=layers, act_bits=3, max_width=width)
    return net, random_inputs(rng, net, samples)


def new_link(net, *, lanes=2, timeout=TIMEOUT, load_bytes=0):
    return LinkedAccelerator(net, lanes=lanes, divisor=DIVISOR, timeout=timeout,
                             clock_hz=CLOCK_HZ, load_bytes=load_bytes)


@pytest.fixture(scope="module")
def small():
    return random_dense(3, layers=3, width=10, samples=4)


def test_identify_infer_and_spikes_match_the_golden_model(small):
    net, a0 = small
    link = new_link(net)
    golden = closed_form(net, a0)
    start = net.window_starts()[-1]

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
            times = golden.times[-1][k].reshape(-1)
            expected = np.where(times == NO_SPIKE, proto.NO_SPIKE_STEP, times - start)
            np.testing.assert_array_equal(steps, expected)


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


def test_uart_rejects_impossible_baud_rates():
    assert divisor_for(12_000_000, 1_000_000) == 12
    with pytest.raises(OnespikeError, match="too fast"):
        divisor_for(12_000_000, 4_000_000)
    with pytest.raises(OnespikeError, match="off at 12 MHz"):
        divisor_for(12_000_000, 1_900_000)
    with pytest.raises(ValueError, match="at least 4"):
        UARTReceiver(divisor=3)
    with pytest.raises(ValueError, match="at least 4"):
        UARTTransmitter(divisor=2)
