"""Run the generated accelerator in Amaranth's simulator and read back what it did.

:func:`run` streams samples in (with optional idle gaps), takes classes out (with optional
random backpressure), decodes every tap into spike times and logits, and returns a
:class:`~onespike.sim.observed.HardwareTrace` that :func:`onespike.sim.first_mismatch`
compares with the golden model, plus the cycle counts. Taps are decoded by
:class:`~onespike.sim.observed.TapDecoder`, the decoder the cocotb testbench uses too.
"""

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from onespike.sim.observed import HardwareTrace, TapDecoder

__all__ = ["HardwareRun", "run"]


@dataclass(frozen=True)
class HardwareRun:
    trace: HardwareTrace
    cycles: int                 # first input transfer to last class transfer
    sample_done: tuple          # cycle at which each sample's class transferred
    transfers: tuple = ()       # per tap: spikes or activations sent (markers not counted)
    zeros_sent: tuple = ()      # per tap: activations of value 0 sent (dense coding)
    duplicates: int = 0         # neurons sent twice within one sample


class _Bench:
    """Driver (input stream, optional reset), monitor (taps, classes) and their state."""

    def __init__(self, top, a0, *, idle, backpressure, seed, max_cycles, interrupt):
        self.top, self.a0 = top, a0
        self.idle, self.backpressure = idle, backpressure
        self.rng = np.random.default_rng(seed)
        self.limit = max_cycles or 10_000_000
        self.interrupt = interrupt
        self.taps = [getattr(top, f"tap_{n}") for n in range(len(top.net.layers))]
        self.dense = "value" in dict(self.taps[0].payload.shape())     # activation taps
        self.decoder = TapDecoder.for_network(top.net, len(a0))
        self.cycle, self.recording = 0, interrupt is None
        self.forget()
        self.harness = Module()
        self.harness.domains.sync = self.sync = ClockDomain("sync")
        self.harness.submodules.top = top

    def forget(self):
        """A reset: whatever transferred before never happened."""
        self.classes, self.done, self.first = [], [], None
        self.decoder.forget()

    def _hang(self, what):
        if self.cycle > self.limit:
            raise RuntimeError(f"{what} after {self.limit} cycles: the design hangs")

    async def _interrupted(self, ctx):
        """Stream ``junk`` samples for ``cycles`` cycles, then pulse ``rst``."""
        junk, cycles = self.interrupt
        values = iter(np.asarray(junk, dtype=np.int64).reshape(-1))
        ctx.set(self.top.i.valid, 1)
        ctx.set(self.top.i.payload.value, int(next(values, 0)))
        for _ in range(cycles):
            _, _, ready = await ctx.tick().sample(self.top.i.ready)
            if ready:
                ctx.set(self.top.i.payload.value, int(next(values, 0)))
        ctx.set(self.top.i.valid, 0)
        ctx.set(self.sync.rst, 1)
        await ctx.tick()
        ctx.set(self.sync.rst, 0)

    async def _send(self, ctx, value):
        i = self.top.i
        while self.idle and self.rng.random() < self.idle:
            ctx.set(i.valid, 0)
            await ctx.tick()
        ctx.set(i.valid, 1)
        ctx.set(i.payload.value, int(value))
        while not (await ctx.tick().sample(i.ready))[2]:
            self._hang("input not accepted")
        if self.first is None:
            self.first = self.cycle

    async def driver(self, ctx):
        if self.interrupt is not None:
            await self._interrupted(ctx)
        for sample in self.a0:
            for value in sample.reshape(-1):
                await self._send(ctx, value)
            ctx.set(self.top.i.valid, 0)
        while len(self.classes) < len(self.a0):
            self._hang("no result")
            await ctx.tick()

    def _observe(self, o_valid, o_ready, o_index, l_valid, l_payload, tap_values):
        if o_valid and o_ready:
            self.classes.append(int(o_index))
            self.done.append(self.cycle)
        if l_valid:
            self.decoder.logit(int(l_payload.index), int(l_payload.value), l_payload.last)
        for n, (valid, payload) in enumerate(zip(tap_values[::2], tap_values[1::2])):
            if valid and self.dense:
                self.decoder.activation(n, payload.index, int(payload.value), payload.end)
            elif valid:
                self.decoder.spike(n, payload.index, int(payload.step), payload.end)

    async def monitor(self, ctx):
        top = self.top
        signals = [self.sync.rst, top.o.valid, top.o.ready, top.o.payload.index,
                   top.tap_logits.valid, top.tap_logits.payload]
        for tap in self.taps:
            signals += [tap.valid, tap.payload]
        ctx.set(top.o.ready, 1)
        async for _, _, reset, *values in ctx.tick().sample(*signals):
            self.cycle += 1
            if reset:           # transfers in a reset cycle never happened
                self.forget()
                self.recording = True
            elif self.recording:
                self._observe(*values[:5], values[5:])
            ctx.set(top.o.ready, int(not self.backpressure
                                     or self.rng.random() >= self.backpressure))

    def result(self) -> HardwareRun:
        cycles = self.done[-1] - (self.first or 0) if self.done else 0
        d = self.decoder
        return HardwareRun(d.trace(self.classes), cycles, tuple(self.done),
                           tuple(d.transfers), tuple(d.zeros), d.duplicates)


def run(top, a0, *, idle=0.0, backpressure=0.0, seed=0, vcd=None, max_cycles=None,
        interrupt=None) -> HardwareRun:
    """Simulate ``top`` (:class:`~onespike.hdl.top.Accelerator`, or the dense coding's
    :class:`~onespike.hdl.dense_top.DenseAccelerator`) on integer inputs ``a0``.

    ``interrupt=(junk, cycles)`` first streams the samples ``junk`` for ``cycles`` cycles,
    then pulses ``rst`` for one cycle: what follows must be as if nothing came before.
    """
    bench = _Bench(top, np.asarray(a0, dtype=np.int64), idle=idle, backpressure=backpressure,
                   seed=seed, max_cycles=max_cycles, interrupt=interrupt)
    sim = Simulator(bench.harness)
    sim.add_clock(1e-8)
    sim.add_testbench(bench.driver)
    sim.add_process(bench.monitor)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return bench.result()
