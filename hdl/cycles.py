"""Cycle model of the accelerator: what each stage costs per sample, from the design.

Every stage works on one sample at a time. A spike stream couples its producer (the
encoder's send, a core's firing phase, a max-pooling core) to its consumer (a core's
integration phase, a max-pooling core): the consumer takes each spike only when it is done
with the previous one, so the producer waits while the consumer is busy, and vice versa.
A max-pooling core has no second bank: it passes spikes on in the same step, so the
firing phase before it, the pooling and the integration after it form one chain.

Per sample (``S`` spikes in, ``c(j)`` integration cycles of input spike ``j``, ``A_in``
input steps, ``W`` state words, ``A`` own steps, ``S'`` spikes out):

* integration: ``Σ c(j) + A_in + W + 2`` (one cycle per end-of-step marker; the state
  words are never swept, but phase 2 writes ``U0`` back into the ``W`` words of the
  previous sample through the same membrane write port, in the cycles integration leaves
  free: a saturated integration pays them);
* firing, sweep: ``A·(W + 2) + S' + W + 2`` (one word per cycle and step, one cycle per
  spike sent, an end-of-step marker per step, then ``U0`` written back);
* firing, sorted (:mod:`~onespike.hdl.firing`): ``W + 4 + 2·A + S'`` (one pass that files
  every neuron on its step's list and writes ``U0`` back, then per step a cycle for the
  heads, the spikes and the marker);
* max pooling: ``(1 + span²)·S + 2·A + pooled neurons`` (fired bits cleared after the window);
* encoder: ``inputs + 1`` to load, ``2·A0 + c·S0`` to send (``c`` its ``spike_cycles``);
  readout: ``classes + groups + 1``;
* a core with single-port membranes (:mod:`~onespike.hdl.single_port`): its integration
  and firing ``PACE`` times the above (every step of its logic takes ``PACE`` cycles);
  with one membrane bank, the chain into it and its firing in turn (``layer<n>_one_bank``);
* a recurrent layer (:mod:`~onespike.hdl.recurrent`) per sequence step: its integration
  takes the spikes of ``x_t`` and of ``h_{t−1}`` (``S_h``, as many cycles each as an input
  spike) and three cycles per step of its window ``P`` (the merge's phases); integration
  and firing overlap but are coupled through the state, so a step costs
  ``max(integration, firing) + S_h``.

In a sequence network every per-step stage runs ``T`` times a sample (``T`` windows), the
stages after the last recurrent layer once.

A chain's time is the slower side plus the coupling: every spike the producer sends while
the consumer is still busy with the previous one waits, which costs about one cycle per
spike on top of the slower side. In steady state a sample leaves every
``max(stages, chains)`` cycles; a single sample's latency is the input load, plus each
chain, plus the readout. ``bench/hdl_cycles.py`` and ``bench/lean_table.py`` put the model
next to measured cycles.
"""

import numpy as np

from onespike.hdl.firing import FiringTiming, firing_cycles
from onespike.hdl.maxpool import MaxPoolSizes
from onespike.hdl.recurrent import RecurrentSizes

__all__ = ["cycle_estimate", "event_chains", "integration_cycles", "stage_layer"]


def stage_layer(name):
    """The layer number of a cycle-model stage named ``layer<n>_…`` (None for the others)."""
    return int(name[5:name.index("_")]) if name.startswith("layer") else None


def _per_sequence(net, stages):
    """Per-window ``stages`` as cycles per sample: ``T`` times for the per-step ones (the
    encoder's, which holds one step, included), once for the others."""
    if net.steps is None:
        return stages
    def windows(name):
        n = 0 if name.startswith("encoder") else \
            int(name[6:]) if name.startswith("stream") else stage_layer(name)
        return net.steps if n is not None and net.per_step(n) else 1
    return {k: v * windows(k) for k, v in stages.items()}


def integration_cycles(core, spikes):
    """Integration cycles of :class:`~onespike.hdl.core.NeuronCore` ``core`` for ``spikes``:
    a count (every input position equally likely) or spike maps (``(..., *in_shape)``,
    nonzero = spike; the mean over leading axes)."""
    per = core.spike_cycles
    if np.ndim(spikes) == 0:
        return float(spikes) * float(per.mean())
    maps = np.asarray(spikes).reshape(-1, len(per)) != 0
    return float((maps @ per).mean())


def _sweep_order(shape, lanes, flat):
    """``(word, lane)`` of the neurons ``flat`` (C-order numbers of a map of ``shape``):
    the order in which a firing sweep of ``lanes`` lanes sends them."""
    if len(shape) == 1:
        return [(int(f) // lanes, int(f) % lanes) for f in flat]
    _, h, w = shape
    out = []
    for f in flat:
        c, rest = divmod(int(f), h * w)
        out.append(((c // lanes) * h * w + rest, c % lanes))
    return out


def _pooled(layer, flat):
    """The pooled neurons (C-order numbers) whose window holds input neuron ``flat``."""
    _, h, w = layer.in_shape
    _, ho, wo = layer.out_shape
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.padding
    ch, rest = divmod(int(flat), h * w)
    y, x = divmod(rest, w)
    ys = [o for o in range(ho) if 0 <= y + ph - o * sh < kh]
    xs = [o for o in range(wo) if 0 <= x + pw - o * sw < kw]
    return [(ch * ho + oy) * wo + ox for oy in ys for ox in xs]


class _Integrator:
    """A core's integration phase as a consumer: ``take(t, spike)`` is when it can take
    the next item after taking ``spike`` (a C-order number, None: a marker) at ``t``."""

    def __init__(self, core):
        self.per, self.pace = core.spike_cycles, core.pace
        self.done = 0

    def take(self, t, spike):
        self.done = t + self.pace * (1 if spike is None else max(int(self.per[spike]), 1))
        return self.done


class _Pool:
    """A max-pooling core and the integrator after it, as one consumer."""

    def __init__(self, core, after):
        self.core, self.after, self.fired = core, after, set()
        self.down = 0                                 # when ``after`` takes its next item
        self.done = 0

    def take(self, t, spike):
        if spike is None:                             # END passes the marker on
            t2 = max(t + 1, self.down)
            self.down = self.after.take(t2, None)
            self.done = max(t2 + 1, self.after.done)
            return t2 + 1
        cycle = t + 1
        pooled = [p for p in _pooled(self.core._layer, spike) if p not in self.fired]
        for p in pooled:                              # one CHECK cycle per candidate
            t2 = max(cycle, self.down)
            self.down = self.after.take(t2, p)
            self.fired.add(p)
            cycle = t2 + 1
        cycle += self.core.fan_out - len(pooled)
        self.done = max(cycle, self.after.done)
        return cycle - 1


def _chain(steps, words, consumer, tail=0, lists=False, fetch=0, pace=1):
    """Cycles of one sample through a producer and ``consumer``: ``steps`` per step the
    spikes ``(word, neuron)`` in sending order; ``words`` the producer's state words
    (None: the encoder, which sends a list head, its spikes, a marker, with ``fetch``
    cycles before each spike); ``lists``: a core with sorted firing; a core's phase 2 as
    :class:`~onespike.hdl.firing.FiringTiming` says (the sweep: its words one a cycle
    within each step's ``step`` cycles; sorted: a list head, the spikes, a marker);
    ``pace``: the producer's clock cycles per step of its logic."""
    cur = ready = setup = write_back = 0
    if words is not None:
        timing = FiringTiming(words, lists)
        setup, write_back = pace * timing.setup, pace * timing.write_back
        if lists:      # the pass over the words: before the spikes, but while the consumer
            words = None                   # still works on the sample before

    for spikes in steps:
        start, last = cur, None
        cur = start + pace
        for word, spike in spikes:
            if words is not None and word != last:
                cur = start + pace * (word + 2) if last is None else \
                    cur + pace * (word - last)
                last = word
            t = max(cur + fetch, ready)
            ready, cur = consumer.take(t, spike), t + pace
        if words is not None:      # the step's last word, then its marker
            cur = start + pace * (timing.step - 1) if last is None else \
                cur + pace * (words - 1 - last)
        t = max(cur, ready)
        ready, cur = consumer.take(t, None), t + pace
    return max(setup + cur + write_back, consumer.done + tail)


def _stream_steps(levels, act, shape, lanes, lists=False):
    """Per step the spikes ``(word, neuron)`` of a stream in sending order (``lanes``
    None: the encoder, which sends a level's list newest first; ``lists``: a core with
    sorted firing, lane by lane, newest word first)."""
    steps = []
    for k in range(levels):
        flat = np.flatnonzero(act == levels - k)
        if lanes is None:
            steps.append([(None, int(f)) for f in flat[::-1]])
        elif lists:
            keys = _sweep_order(shape, lanes, flat)
            steps.append([(key[0], int(f)) for key, f in
                          sorted(zip(keys, flat), key=lambda e: (e[0][1], -e[0][0]))])
        else:
            keys = _sweep_order(shape, lanes, flat)
            steps.append([(key[0], int(f)) for key, f in sorted(zip(keys, flat))])
    return steps


def event_chains(top, maps) -> dict:
    """Mean cycles per sample of every producer → consumer chain, replaying the spikes of
    ``maps`` (activation maps ``(samples, *shape)`` of every stream) through the
    handshakes: a spike waits until the consumer has taken the previous one."""
    net, cores = top.net, top.cores
    chains = {}
    for n, core in enumerate(cores):
        if n > 0 and isinstance(cores[n - 1], MaxPoolSizes):
            continue                                 # part of the chain through the pool
        levels = net.in_levels(n)
        shape = net.layers[n].in_shape
        producer = None if n == 0 else cores[n - 1]
        times = []
        for act in np.asarray(maps[n]).reshape(len(maps[n]), -1):
            if isinstance(core, MaxPoolSizes):
                consumer, tail = _Pool(core, _Integrator(cores[n + 1])), \
                    core.fired_memory_bits + cores[n + 1].words + 2
            else:
                consumer, tail = _Integrator(core), core.pace * (core.words + 2)  # U0 back
            lists = producer is not None and producer.sorted_firing
            steps = _stream_steps(levels, act, shape,
                                  None if producer is None else producer.lanes, lists)
            times.append(_chain(steps, None if producer is None else producer.words,
                                consumer, tail, lists,
                                top.encoder.spike_cycles - 1 if producer is None else 0,
                                getattr(producer, "pace", 1)))
        chains[f"stream{n}"] = float(np.mean(times))
    return chains


def _count(spikes):
    return float(spikes) if np.ndim(spikes) == 0 else \
        float((np.asarray(spikes) != 0).reshape(len(np.asarray(spikes)), -1).sum(1).mean()) \
        if np.ndim(spikes) > 1 else float((np.asarray(spikes) != 0).sum())


def cycle_estimate(top, spikes=None) -> dict:
    """Cycles per sample of ``top``, an :class:`~onespike.hdl.plan.AcceleratorPlan` (or the
    :class:`~onespike.hdl.top.Accelerator` built from one): ``stages``
    (each stage alone, and each chain ``stream<n>``), ``chains``, ``steady`` (the largest)
    and ``latency``. ``spikes[n]`` is
    what the stream into layer ``n`` carries (``spikes[0]``: input spikes): a count, or
    spike maps (then each spike's integration cost follows its position); ``None`` assumes
    every neuron spikes (the most work a sample can bring)."""
    net = top.net
    sizes = [int(np.prod(net.encoder.shape))] + [int(np.prod(l.out_shape))
                                                  for l in net.layers]
    spikes = list(sizes[:-1] if spikes is None else spikes)
    counts = [_count(s) / (net.steps if np.ndim(s) > 1 and net.per_step(n) else 1)
              for n, s in enumerate(spikes)]                  # per window
    levels = [net.in_levels(n) for n in range(len(net.layers))]
    stages = {"encoder_load": sizes[0] + 1}
    chain = {"encoder_send": 2 * levels[0] + top.encoder.spike_cycles * counts[0]}
    chains = {}
    one_bank = {}                 # layer -> its firing, for the layers with one bank

    def close(name):
        slowest = max(chain.values())
        chains[name] = slowest + (counts_into if len(chain) > 1 else 0)
        stages.update(chain)
        chain.clear()

    for n, core in enumerate(top.cores):
        counts_into = counts[n]
        if isinstance(core, MaxPoolSizes):
            chain[f"layer{n}_maxpool"] = core.fan_out * counts[n] + 2 * levels[n] \
                + core.fired_memory_bits
            continue
        integrate = integration_cycles(core, counts[n] if net.steps else spikes[n]) \
            + levels[n] + 2 + core.words + 2
        if isinstance(core, RecurrentSizes):
            state = counts[n + 1]       # per step (the last step's, when only it goes on)
            integrate += state * core.groups + 3 * core.window
            fire = firing_cycles(core.words, net.layers[n].levels, state, core.sorted_firing)
            chain[f"layer{n}_integrate"] = max(integrate, fire) + state
            close(f"stream{n}")
            continue
        chain[f"layer{n}_integrate"] = integrate * core.pace
        close(f"stream{n}")
        if n < len(top.cores) - 1:
            layer = net.layers[n]
            chain[f"layer{n}_fire"] = core.pace * firing_cycles(
                core.words, layer.levels, counts[n + 1], core.sorted_firing)
            if core.banks == 1:      # a sample integrates once the one before has fired
                one_bank[n] = chain[f"layer{n}_fire"]
    stages["readout"] = sizes[-1] + top.cores[-1].groups + 1
    if net.steps is None and all(np.ndim(m) > 1 for m in spikes):   # maps: replay them
        chains = event_chains(top, spikes)
    for n, fire in one_bank.items():     # its integration chain, then its firing, in turn
        into = chains.get(f"stream{n}", chains.get(f"stream{n - 1}"))   # through a pool
        stages[f"layer{n}_one_bank"] = into + fire
    if getattr(top.encoder, "banks", 2) == 1:      # load, then send, in turn
        stages["encoder_one_bank"] = stages["encoder_load"] + stages["encoder_send"] + 1
    stages = {k: int(round(v)) for k, v in _per_sequence(net, stages).items()}
    chains = {k: int(round(v)) for k, v in _per_sequence(net, chains).items()}
    latency = stages["encoder_load"] + sum(chains.values()) + stages["readout"] + 1
    return {"stages": {**stages, **chains}, "chains": chains,
            "steady": max(max(stages.values()), max(chains.values())), "latency": latency}
