"""cocotb testbench for the whole board top (UART + link + accelerator) on its UART pins.

Run by :func:`onespike.boards.simulate.simulate_board` through cocotb's runner; the
environment variable ``ONESPIKE_BOARD`` names its configuration (JSON: network, inputs,
clock period and UART bit time). ``cocotbext-uart`` sends real frames on ``rx`` and reads
``tx``; the expected answers come from the golden model, imported.
"""

import json
import os
import struct

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, with_timeout
from cocotbext.uart import UartSink, UartSource

from onespike.boards import protocol as proto
from onespike.ir import load
from onespike.sim.golden import closed_form
from onespike.sim.observed import window_steps

CONFIG_ENV = "ONESPIKE_BOARD"


async def read_bytes(sink, count):
    """``count`` bytes from ``sink`` (its ``read(n)`` fails unless n bytes are queued)."""
    data = bytearray()
    while len(data) < count:
        data += await sink.read(1)
    return bytes(data)


async def read_frame(sink, timeout_ns):
    """One board frame (kind, payload), its checksum checked."""
    head = await with_timeout(read_bytes(sink, 4), timeout_ns, "ns")
    assert head[0] == proto.BOARD_SYNC, f"frame starts with {head[0]:#x}"
    size = int.from_bytes(head[2:4], "little")
    rest = await with_timeout(read_bytes(sink, size + 1), timeout_ns, "ns")
    assert proto.crc8(bytes(head[1:]) + bytes(rest[:-1])) == rest[-1], "bad crc from board"
    return head[1], bytes(rest[:-1])


@cocotb.test()
async def board_answers_like_the_golden_model(dut):
    config = json.loads(open(os.environ[CONFIG_ENV]).read())
    net = load(config["net"])
    a0 = np.load(config["inputs"])
    period, baud = config["clock_ns"], config["baud"]
    cocotb.start_soon(Clock(dut.clk, period, unit="ns").start())
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    source = UartSource(dut.rx, baud=baud, bits=8)
    sink = UartSink(dut.tx, baud=baud, bits=8)
    timeout = 10_000_000 + 1e9 / baud * 10 * 4 * a0[0].size

    async def ask(command, payload=b""):
        await source.write(proto.frame(proto.HOST_SYNC, command, payload))
        return await read_frame(sink, timeout)

    weights = open(config["weights"], "rb").read()
    expected = proto.Identity.of(load(config["hardware"]), clock_hz=config["clock_hz"],
                                 load_bytes=len(weights), loaded=not weights)
    kind, body = await ask(proto.Command.IDENTIFY)
    assert kind == proto.Reply.IDENTITY
    identity = proto.Identity.unpack(body)
    assert identity == expected
    for start in range(0, len(weights), proto.MAX_LOAD_CHUNK):    # run-time weights
        chunk = struct.pack("<I", start) + weights[start:start + proto.MAX_LOAD_CHUNK]
        assert await ask(proto.Command.LOAD, chunk) == (proto.Reply.LOADED, b"")
    if weights:
        kind, body = await ask(proto.Command.IDENTIFY)
        identity = proto.Identity.unpack(body)
        assert identity.loaded, "all weights sent, but the board says they are not loaded"

    golden = closed_form(net, a0)
    for k, a in enumerate(a0):
        spikes = k % 2 == 1
        payload = bytes(int(v) for v in a.reshape(-1))
        if k == 1:       # a corrupt frame first: answered CHECKSUM, then the real one
            corrupt = bytearray(proto.frame(proto.HOST_SYNC, proto.Command.INFER, payload))
            corrupt[-1] ^= 0x5A
            await source.write(bytes(corrupt))
            assert await read_frame(sink, timeout) == (proto.Reply.ERROR,
                                                       bytes([proto.Fault.CHECKSUM]))
        kind, body = await ask(proto.Command.INFER_SPIKES if spikes else proto.Command.INFER,
                               payload)
        assert kind == (proto.Reply.SPIKES if spikes else proto.Reply.RESULT)
        cls, logits, steps = proto.decode_result(body, identity, spikes=spikes)
        assert cls == golden.classes[k], f"sample {k}: class {cls}, golden {golden.classes[k]}"
        assert logits == list(golden.logits[k]), f"sample {k}: logits differ"
        if spikes:
            expected = window_steps(net, golden.times[-1][k], -1).reshape(-1)
            assert list(steps) == list(expected), f"sample {k}: spike steps differ"
        with open(os.path.join(config["out"], "answered"), "w") as f:
            f.write(str(k + 1))
