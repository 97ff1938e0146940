"""Run the generated accelerator in Amaranth's simulator and read back what it did.

:func:`run` streams samples in (with optional idle gaps), takes classes out (with optional
random backpressure), decodes every tap into spike times and logits, and returns a
:class:`~onespike.sim.Trace` that :func:`onespike.sim.first_mismatch` compares with the
golden model, plus the cycle counts.
"""

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from onespike.hdl.streams import flat_index_of
from onespike.ir import NO_SPIKE
from onespike.sim import Trace

__all__ = ["HardwareRun", "run"]


@dataclass(frozen=True)
class HardwareRun:
    trace: Trace
    cycles: int                 # first input transfer to last class transfer
    sample_done: tuple          # cycle at which each sample's class transferred


def run(top, a0, *, idle=0.0, backpressure=0.0, seed=0, vcd=None, max_cycles=None,
        interrupt=None):
    """Simulate ``top`` (:class:`~onespike.hdl.top.Accelerator`) on integer inputs ``a0``.

    ``interrupt=(junk, cycles)`` first streams the samples ``junk`` for ``cycles`` cycles,
    then pulses ``rst`` for one cycle: what follows must be as if nothing came before.
    """
    net = top.net
    a0 = np.asarray(a0, dtype=np.int64)
    samples = len(a0)
    rng = np.random.default_rng(seed)
    starts = net.window_starts()
    taps = [getattr(top, f"tap_{n}") for n in range(len(net.layers))]
    shapes = [net.encoder.shape] + [layer.out_shape for layer in net.layers[:-1]]
    levels = [net.in_levels(n) for n in range(len(net.layers))]
    times = [np.full((samples, int(np.prod(s))), NO_SPIKE, dtype=np.int64) for s in shapes]
    logits = np.zeros((samples, net.num_classes), dtype=np.int64)
    classes, done = [], []
    state = {"cycle": 0, "first": None, "tap_sample": [0] * len(taps), "logit_sample": 0,
             "recording": interrupt is None}
    limit = max_cycles or 10_000_000

    harness = Module()
    harness.domains.sync = sync = ClockDomain("sync")
    harness.submodules.top = top

    def forget():
        classes.clear(), done.clear()
        state.update(first=None, tap_sample=[0] * len(taps), logit_sample=0)
        logits[:] = 0
        for t in times:
            t[:] = NO_SPIKE

    async def interrupted(ctx):
        junk, cycles = interrupt
        values = iter(np.asarray(junk, dtype=np.int64).reshape(-1))
        ctx.set(top.i.valid, 1)
        ctx.set(top.i.payload.value, int(next(values, 0)))
        for _ in range(cycles):
            _, _, ready = await ctx.tick().sample(top.i.ready)
            if ready:
                ctx.set(top.i.payload.value, int(next(values, 0)))
        ctx.set(top.i.valid, 0)
        ctx.set(sync.rst, 1)
        await ctx.tick()
        ctx.set(sync.rst, 0)

    async def driver(ctx):
        if interrupt is not None:
            await interrupted(ctx)
        for sample in a0:
            for value in sample.reshape(-1):
                while idle and rng.random() < idle:
                    ctx.set(top.i.valid, 0)
                    await ctx.tick()
                ctx.set(top.i.valid, 1)
                ctx.set(top.i.payload.value, int(value))
                while True:
                    _, _, ready = await ctx.tick().sample(top.i.ready)
                    if ready:
                        break
                    if state["cycle"] > limit:
                        raise RuntimeError(f"input not accepted after {limit} cycles: the "
                                           f"design hangs")
                if state["first"] is None:
                    state["first"] = state["cycle"]
            ctx.set(top.i.valid, 0)
        while len(classes) < samples:
            if state["cycle"] > limit:
                raise RuntimeError(f"no result after {limit} cycles: the design hangs")
            await ctx.tick()

    async def monitor(ctx):
        signals = [sync.rst, top.o.valid, top.o.ready, top.o.payload.index, top.tap_logits.valid,
                   top.tap_logits.payload]
        for tap in taps:
            signals += [tap.valid, tap.payload]
        ctx.set(top.o.ready, 1)
        async for _, _, reset, o_valid, o_ready, o_index, l_valid, l_payload, *tap_values \
                in ctx.tick().sample(*signals):
            state["cycle"] += 1
            if reset:           # transfers in a reset cycle never happened
                forget()
                state["recording"] = True
                continue
            if not state["recording"]:
                continue
            if o_valid and o_ready:
                classes.append(int(o_index))
                done.append(state["cycle"])
            if l_valid:
                s = state["logit_sample"]
                logits[s, int(l_payload.index)] = int(l_payload.value)
                state["logit_sample"] += int(l_payload.last)
            for n in range(len(taps)):
                valid, payload = tap_values[2 * n], tap_values[2 * n + 1]
                if not valid:
                    continue
                s = state["tap_sample"][n]
                if payload.end:
                    if int(payload.step) == levels[n] - 1:
                        state["tap_sample"][n] += 1
                else:
                    times[n][s, flat_index_of(payload.index, shapes[n])] = \
                        starts[n] + int(payload.step)
            ctx.set(top.o.ready, int(not backpressure or rng.random() >= backpressure))

    sim = Simulator(harness)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_process(monitor)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    times = tuple(t.reshape((samples,) + tuple(s)) for t, s in zip(times, shapes))
    trace = Trace(activations=(), times=times, logits=logits, classes=np.array(classes),
                  input_spikes=None, spikes=None, synaptic_ops=None)
    return HardwareRun(trace, done[-1] - (state["first"] or 0) if done else 0, tuple(done))
