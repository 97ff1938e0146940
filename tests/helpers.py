"""Helpers shared by the test modules (imported as ``helpers``; tests never import tests)."""

import dataclasses
import random

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import data
from amaranth.sim import Simulator

from onespike.boards import protocol as proto
from onespike.boards.link import LinkedAccelerator
from onespike.hdl.conv import ConvCore
from onespike.hdl.dense import DenseCore
from onespike.hdl.maxpool import MaxPoolCore
from onespike.ir import Conv, MaxPool, Network
from onespike.sim import closed_form, random_inputs, random_network
from onespike.sim.observed import flat_index_of


# -- stream components --------------------------------------------------------------------
# One stream component (``i`` in, ``o`` out) alone in the Amaranth simulator, fed the golden
# model's per-layer streams: the input with random idle cycles, the output with random
# backpressure (verilog-axis' per-module testbenches). A spike stream is compared as one
# set of neurons per time step, in order, with exactly ``A`` end-of-step markers per sample.

def plain(value):
    """A sampled payload as plain Python: ints, and dicts for struct layouts."""
    if isinstance(value, data.Const):
        return {name: plain(value[name]) for name, _ in value.shape()}
    return int(value)


def run_stream(component, inputs, *, until, idle=0.0, backpressure=0.0, seed=0,
               max_cycles=200_000, tail=32, timed=False):
    """Simulate ``component`` alone: send the payload dicts ``inputs`` on its ``i`` (idle
    cycles with probability ``idle`` before each), keep ``o.ready`` low with probability
    ``backpressure`` per cycle, and return every ``o`` transfer as a plain payload.

    Stops ``tail`` cycles after ``until(outputs)`` holds (so that extra transfers are seen
    too), or after ``max_cycles``: a component that hangs returns what it sent so far.
    Fails if ``o`` drops ``valid`` or changes ``payload`` before a transfer. ``timed``:
    ``(cycle, payload)`` pairs (``until`` sees them too).
    """
    driver_rng, monitor_rng = (np.random.default_rng([seed, k]) for k in range(2))
    outputs, state = [], {"cycle": 0}
    i, o = component.i, component.o
    m = Module()
    m.submodules.dut = component

    async def driver(ctx):
        for payload in inputs:
            while idle and driver_rng.random() < idle:
                ctx.set(i.valid, 0)
                await ctx.tick()
            ctx.set(i.payload, payload)
            ctx.set(i.valid, 1)
            while state["cycle"] < max_cycles:
                _, _, ready = await ctx.tick().sample(i.ready)
                if ready:
                    break
        ctx.set(i.valid, 0)
        while not until(outputs) and state["cycle"] < max_cycles:
            await ctx.tick()
        await ctx.tick().repeat(tail)

    async def monitor(ctx):
        ctx.set(o.ready, 1)
        held = None                          # payload offered, not taken, last cycle
        async for _, _, valid, ready, payload in ctx.tick().sample(o.valid, o.ready,
                                                                   o.payload):
            state["cycle"] += 1
            if held is not None and (not valid or plain(payload) != held):
                state.setdefault("broken", f"cycle {state['cycle']}: o withdrew {held} "
                                           f"before it was taken")
            if valid and ready:
                outputs.append((state["cycle"], plain(payload)) if timed else plain(payload))
            held = plain(payload) if valid and not ready else None
            ctx.set(o.ready, int(monitor_rng.random() >= backpressure))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_process(monitor)
    sim.run()
    assert "broken" not in state, state.get("broken")
    return outputs


def neuron_payload(neuron, shape):
    """The ``index`` payload of neuron ``neuron`` (a tuple in ``shape``)."""
    if len(shape) == 1:
        return int(neuron[0])
    c, y, x = (int(n) for n in neuron)
    return {"x": x, "y": y, "c": c}


def neuron_of(index, shape):
    """The neuron (a tuple in ``shape``) that an ``index`` payload names."""
    return tuple(int(n) for n in np.unravel_index(flat_index_of(index, shape), shape))


def spike_steps(times, start, levels):
    """The golden spike map ``times`` (``(samples, *shape)``, window ``start``) as one
    frozenset of neurons per time step: ``levels`` entries per sample, in stream order."""
    return [frozenset(tuple(int(n) for n in neuron) for neuron in np.argwhere(t == start + k))
            for t in times for k in range(levels)]


def spike_transfers(steps, shape, levels, rng):
    """The payloads of a spike stream with the spikes of ``steps`` in a random order within
    each step. A marker's ``index`` is unused: it names a random neuron here."""
    out = []
    for number, neurons in enumerate(steps):
        step, neurons = number % levels, sorted(neurons)
        for j in rng.permutation(len(neurons)):
            out.append({"index": neuron_payload(neurons[j], shape), "step": step, "end": 0})
        anyone = [int(rng.integers(n)) for n in shape]
        out.append({"index": neuron_payload(anyone, shape), "step": step, "end": 1})
    return out


def markers(count):
    """``until`` for :func:`run_stream`: ``count`` end-of-step markers have been sent."""
    return lambda outputs: sum(t["end"] for t in outputs) >= count


def read_spike_steps(outputs, shape, levels):
    """``(steps, problem)``: the transfers ``outputs`` of a spike stream as per-step sets,
    and the first breach of the stream's form (a spike or marker with the wrong ``step``,
    a marker whose ``index`` is not 0, a neuron twice in a step, spikes after the last
    marker), or ``None``."""
    steps, current, problems = [], set(), []
    for transfer in outputs:
        sample, step = divmod(len(steps), levels)
        where = f"sample {sample}, step {step}"
        if transfer["step"] != step:
            problems.append(f"{where}: a transfer has step {transfer['step']}")
        if transfer["end"]:
            if flat_index_of(transfer["index"], shape) != 0:
                problems.append(f"{where}: the end-of-step marker has index "
                                f"{transfer['index']}, not 0")
            steps.append(frozenset(current))
            current = set()
            continue
        neuron = neuron_of(transfer["index"], shape)
        if neuron in current:
            problems.append(f"{where}: neuron {neuron} spikes twice")
        current.add(neuron)
    if current:
        problems.append(f"spikes {sorted(current)} after the last end-of-step marker")
    return steps, (problems[0] if problems else None)


def spike_mismatch(expected, outputs, shape, levels):
    """The first difference between the per-step sets ``expected`` (:func:`spike_steps`)
    and the spike stream ``outputs``, as a sentence naming sample and step; else ``None``."""
    actual, problem = read_spike_steps(outputs, shape, levels)
    for number, (want, got) in enumerate(zip(expected, actual)):
        if want != got:
            sample, step = divmod(number, levels)
            return (f"sample {sample}, step {step}: missing spikes {sorted(want - got)}, "
                    f"unexpected spikes {sorted(got - want)}")
    if len(actual) != len(expected):
        return f"{len(actual)} end-of-step markers, expected {len(expected)}"
    return problem


def sequence_mismatch(expected, outputs, what, per_sample=1):
    """The first difference between two lists of payloads (``per_sample`` of them per
    sample, each a ``what``), as a sentence naming sample and item; else ``None``."""
    for number, (want, got) in enumerate(zip(expected, outputs)):
        if want != got:
            sample, item = divmod(number, per_sample)
            return f"sample {sample}, {what} {item}: expected {want}, got {got}"
    if len(outputs) != len(expected):
        return f"{len(outputs)} transfers, expected {len(expected)} ({what}s)"
    return None


def layer_core(net, n, *, lanes=1, layer=None, sorted_firing=False):
    """The core of layer ``n`` of ``net`` as the accelerator builds it (``layer`` replaces
    the network's own, e.g. with a planted fault; ``sorted_firing`` as the accelerator's
    ``firing="sorted"``)."""
    layer = net.layers[n] if layer is None else layer
    if isinstance(layer, MaxPool):
        return MaxPoolCore(layer, levels=net.in_levels(n))
    core = ConvCore if isinstance(layer, Conv) else DenseCore
    return core(layer, in_levels=net.in_levels(n), widths=net.widths()[n], lanes=lanes,
                sorted_firing=sorted_firing)


def check_encoder(encoder, net, a0, **flow):
    """Run ``encoder`` on the integer inputs ``a0``; the first difference from the golden
    input spike stream, or ``None``. ``flow``: idle, backpressure, seed of
    :func:`run_stream`."""
    levels = net.encoder.levels
    expected = spike_steps(closed_form(net, a0).times[0], 0, levels)
    inputs = [{"value": int(v)} for v in np.asarray(a0).reshape(-1)]
    outputs = run_stream(encoder, inputs, until=markers(len(expected)), **flow)
    return spike_mismatch(expected, outputs, net.encoder.shape, levels)


def check_layer(core, net, n, a0, **flow):
    """Feed ``core`` (layer ``n`` of ``net``) the golden spike stream into layer ``n`` for
    inputs ``a0``; the first difference of its ``o`` from the golden stream into layer
    ``n + 1`` (the logits for the readout), or ``None``."""
    golden, starts = closed_form(net, a0), net.window_starts()
    layer = net.layers[n]
    rng = np.random.default_rng(flow.get("seed", 0))
    steps = spike_steps(golden.times[n], starts[n], net.in_levels(n))
    inputs = spike_transfers(steps, layer.in_shape, net.in_levels(n), rng)
    if layer.is_readout:
        classes = golden.logits.shape[1]
        expected = [{"index": j, "value": int(v), "last": int(j == classes - 1)}
                    for row in golden.logits for j, v in enumerate(row)]
        outputs = run_stream(core, inputs, until=lambda out: len(out) >= len(expected),
                             **flow)
        return sequence_mismatch(expected, outputs, "logit", classes)
    levels = net.in_levels(n + 1)
    expected = spike_steps(golden.times[n + 1], starts[n + 1], levels)
    outputs = run_stream(core, inputs, until=markers(len(expected)), **flow)
    return spike_mismatch(expected, outputs, layer.out_shape, levels)


def check_argmax(argmax, logits, **flow):
    """Send ``argmax`` the logit rows ``logits`` (one sample each); the first difference of
    its classes from the golden rule (the largest logit, ties to the lowest), or ``None``."""
    logits = np.asarray(logits)
    inputs = [{"index": j, "value": int(v), "last": int(j == len(row) - 1)}
              for row in logits for j, v in enumerate(row)]
    expected = [{"index": int(c)} for c in np.argmax(logits, axis=1)]
    outputs = run_stream(argmax, inputs, until=lambda out: len(out) >= len(expected),
                         **flow)
    return sequence_mismatch(expected, outputs, "class")


def networks_with(count, *, conv, where, samples=3, seed=0, **kw):
    """``(net, n, a0)`` for the first ``count`` random networks (seeds from ``seed`` up, 1-3
    activation bits) in which layer ``n`` is the first for which ``where(layer)`` holds,
    with ``samples`` random inputs ``a0`` on which both its input and (unless it is the
    readout) its output spike map hold spikes."""
    found = []
    while len(found) < count:
        rng = np.random.default_rng(seed)
        net = random_network(rng, conv=conv, act_bits=int(rng.integers(1, 4)), **kw)
        a0 = random_inputs(rng, net, samples)
        seed += 1
        chosen = [n for n, layer in enumerate(net.layers) if where(layer)]
        if not chosen:
            continue
        n, maps = chosen[0], closed_form(net, a0).activations
        if maps[n].any() and (net.layers[n].is_readout or maps[n + 1].any()):
            found.append((net, n, a0))
    return found


def flipped_weight(net, n, a0):
    """Layer ``n`` of ``net`` with the sign of one weight flipped (the first, in C order,
    that changes the layer's golden output on ``a0``): a planted fault of one wrong word in
    the core's weight memory, with the register widths unchanged."""
    layer = net.layers[n]
    golden = closed_form(net, a0)
    for position in map(tuple, np.argwhere(layer.weight != 0)):
        weight = layer.weight.copy()
        weight[position] = -weight[position]
        layers = list(net.layers)
        layers[n] = dataclasses.replace(layer, weight=weight)
        other = closed_form(Network(net.encoder, tuple(layers)), a0)
        if layer.is_readout and not np.array_equal(other.logits, golden.logits) or \
                not layer.is_readout and not np.array_equal(other.times[n + 1],
                                                            golden.times[n + 1]):
            return layers[n]
    raise LookupError(f"no single weight of layer {n} changes its output on these inputs")


def lane_counts(layer):
    """1 and a count above 1 that leaves the last group part-filled where possible."""
    channels = layer.weight.shape[0]
    odd = [p for p in range(2, channels) if channels % p]
    return sorted({1, odd[0] if odd else channels})


FLOWS = [(0.0, 0.0), (0.0, 0.5), (0.3, 0.0), (0.3, 0.5)]
"""``(idle, backpressure)`` settings every stream component runs with."""


# -- networks ------------------------------------------------------------------------------

def conv_networks(count, start=0):
    """``count`` random image networks that convolve or max-pool (dense readout), with a spread of
    kernels 1-5, strides 1-2, padding 0-2, sum pooling into the layer and odd sizes."""
    found, seed = [], start
    while len(found) < count:
        rng = np.random.default_rng(seed)
        net = random_network(rng, conv=True, act_bits=int(rng.integers(1, 4)))
        seed += 1
        if isinstance(net.layers[-1], Conv) or \
                not any(isinstance(l, (Conv, MaxPool)) for l in net.layers):
            continue
        found.append(net)
    return found


CONV_NETS = conv_networks(13)


def conv_net_and_rng(number):
    """Random conv network ``number`` and a generator of its own, so inputs do not depend on
    which tests ran before."""
    return CONV_NETS[number], np.random.default_rng(1000 + number)


# -- boards link --------------------------------------------------------------------------

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


def new_link(net, *, lanes=2, timeout=TIMEOUT, load_bytes=0, coding="ttfs"):
    return LinkedAccelerator(net, lanes=lanes, divisor=DIVISOR, timeout=timeout,
                             clock_hz=CLOCK_HZ, load_bytes=load_bytes, coding=coding)


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


def dense_case(seed=1):
    rng = np.random.default_rng(seed)
    net = random_network(rng, conv=False, act_bits=3)
    return net, random_inputs(rng, net, 4)


def conv_case():
    seed = 0
    while True:
        rng = np.random.default_rng(seed)
        net = random_network(rng, conv=True, act_bits=3)
        seed += 1
        first = net.layers[0]
        if isinstance(first, Conv) and not isinstance(net.layers[-1], Conv) \
                and first.out_shape[1] > 2 and first.kernel[0] > first.stride[0]:
            a0 = random_inputs(rng, net, 3)
            # a layer whose bias saturates every neuron hides any fault in its synapses
            if len(np.unique(closed_form(net, a0).activations[1])) > 2:
                return net, a0
