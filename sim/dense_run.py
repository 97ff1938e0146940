"""Run the dense baseline (:class:`~onespike.hdl.dense_top.DenseAccelerator`) in Amaranth's
simulator and read back what it did, as :mod:`onespike.hdl.simulate` does for the TTFS
accelerator.

Tap decoding (the same rule any testbench must follow): ``tap_<n>`` is the activation
stream into layer ``n``. Per sample, every transfer with ``end = 0`` sets activation
``value`` of neuron ``index`` (a number, or ``{x, y, c}`` → C-order ``c·H·W + y·W + x``);
neurons never sent are 0; the transfer with ``end = 1`` closes the sample. A neuron sent
twice in one sample is a hardware fault (counted in ``duplicates``).
"""

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from onespike.hdl.streams import flat_index_of
from onespike.sim.golden import Trace, spike_times

__all__ = ["DenseRun", "run_dense"]


@dataclass(frozen=True)
class DenseRun:
    trace: Trace                # activations, times (derived), logits, classes
    cycles: int                 # first input transfer to last class transfer
    sample_done: tuple          # cycle at which each sample's class transferred
    transfers: tuple            # per tap: activation transfers (end markers not counted)
    zeros_sent: tuple           # per tap: transfers with value 0
    duplicates: int             # neurons sent twice within one sample
    tap_spans: tuple            # per tap: (first, last) cycle of sample 0's transfers


def run_dense(top, a0, *, idle=0.0, backpressure=0.0, seed=0, vcd=None, max_cycles=None,
              interrupt=None):
    """Simulate ``top`` on integer inputs ``a0`` (``(samples, *encoder.shape)``).

    ``idle``: probability of an idle cycle before each input value; ``backpressure``:
    probability that ``o.ready`` is low in a cycle. ``interrupt=(junk, cycles)`` first
    streams the samples ``junk`` for ``cycles`` cycles, then pulses ``rst`` for one cycle:
    what follows must be as if nothing came before.
    """
    net = top.net
    a0 = np.asarray(a0, dtype=np.int64)
    samples = len(a0)
    rng = np.random.default_rng(seed)
    taps = [getattr(top, f"tap_{n}") for n in range(len(net.layers))]
    shapes = [net.encoder.shape] + [layer.out_shape for layer in net.layers[:-1]]
    maps = [np.zeros((samples, int(np.prod(s))), dtype=np.int64) for s in shapes]
    seen = [np.zeros((samples, int(np.prod(s))), dtype=bool) for s in shapes]
    logits = np.zeros((samples, net.num_classes), dtype=np.int64)
    classes, done = [], []
    counts = {"transfers": [0] * len(taps), "zeros": [0] * len(taps), "duplicates": 0}
    spans = [[None, None] for _ in taps]
    state = {"cycle": 0, "first": None, "tap_sample": [0] * len(taps), "logit_sample": 0,
             "recording": interrupt is None}
    limit = max_cycles or 10_000_000

    harness = Module()
    harness.domains.sync = sync = ClockDomain("sync")
    harness.submodules.top = top

    def forget():
        classes.clear(), done.clear()
        state.update(first=None, tap_sample=[0] * len(taps), logit_sample=0)
        counts.update(transfers=[0] * len(taps), zeros=[0] * len(taps), duplicates=0)
        for span in spans:
            span[:] = [None, None]
        logits[:] = 0
        for a, s in zip(maps, seen):
            a[:] = 0
            s[:] = False

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
        signals = [sync.rst, top.o.valid, top.o.ready, top.o.payload.index,
                   top.tap_logits.valid, top.tap_logits.payload]
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
                if s == 0:
                    spans[n][0] = spans[n][0] or state["cycle"]
                    spans[n][1] = state["cycle"]
                if payload.end:
                    state["tap_sample"][n] += 1
                    continue
                j = flat_index_of(payload.index, shapes[n])
                counts["duplicates"] += int(seen[n][s, j])
                seen[n][s, j] = True
                maps[n][s, j] = int(payload.value)
                counts["transfers"][n] += 1
                counts["zeros"][n] += int(payload.value) == 0
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
    maps = tuple(a.reshape((samples,) + tuple(s)) for a, s in zip(maps, shapes))
    starts = net.window_starts()
    times = tuple(spike_times(a, starts[n], net.in_levels(n)) for n, a in enumerate(maps))
    trace = Trace(activations=maps, times=times, logits=logits, classes=np.array(classes),
                  input_spikes=None, spikes=None, synaptic_ops=None)
    return DenseRun(trace, done[-1] - (state["first"] or 0) if done else 0, tuple(done),
                    tuple(counts["transfers"]), tuple(counts["zeros"]), counts["duplicates"],
                    tuple(tuple(span) for span in spans))
