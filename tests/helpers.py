"""Helpers shared by test modules (test modules never import each other). Each part of
the project keeps its own section."""

# -- boards link --

import random

import numpy as np
from amaranth.hdl import Module
from amaranth.sim import Simulator

from onespike.boards import protocol as proto
from onespike.boards.link import LinkedAccelerator
from onespike.sim.random_net import random_inputs, random_network

DIVISOR = 4          # clock cycles per UART bit in the link tests
TIMEOUT = 200
CLOCK_HZ = 12_000_000


def bits_of(byte, *, stop=1):
    """The 8N1 line levels of ``byte``: start bit, 8 data bits LSB first, stop bit."""
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


def run_components(dut, *benches, cycles=20_000):
    """Simulate ``dut`` with testbenches ``benches`` (async functions of ``ctx``; the first
    must finish within ``cycles``, the others run in the background)."""
    async def watchdog(ctx):
        for _ in range(cycles):
            await ctx.tick()        # not .repeat(): the simulator ends with this suspended
        raise AssertionError(f"the testbench did not finish in {cycles} cycles")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(benches[0])
    for bench in benches[1:] + (watchdog,):
        sim.add_testbench(bench, background=True)
    sim.run()


async def stream_put(ctx, port, payloads, *, rng=None, idle=0.3):
    """Send ``payloads`` on stream ``port`` (an input of the design), with random idle
    cycles when ``rng`` is given."""
    for payload in payloads:
        while rng is not None and rng.random() < idle:
            ctx.set(port.valid, 0)
            await ctx.tick()
        ctx.set(port.valid, 1)
        ctx.set(port.payload, payload)
        await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)


async def stream_get(ctx, port, count, *, rng=None, stall=0.3):
    """Take ``count`` payloads from stream ``port`` (an output of the design), with random
    backpressure when ``rng`` is given."""
    out = []
    while len(out) < count:
        ready = rng is None or rng.random() >= stall
        ctx.set(port.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        if ready and valid:
            out.append(payload)
    ctx.set(port.ready, 0)
    return out


def pacings(seed=0):
    """The stream pacings every component test runs: none, then random idle and
    backpressure."""
    return [None, random.Random(seed)]
