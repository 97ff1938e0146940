"""Rate coding of the same integer network, for comparison with TTFS (``DESIGN.md`` §1).

Integrate-and-fire neurons with reset by subtraction run for ``T`` steps (seed papers: Yan et
al., arXiv 2211.08410; Su et al., arXiv 2408.09403). A spike of a layer with ``A`` levels
stands for ``A/T`` activation units, so a net spike count ``c ∈ 0..T`` decodes to
``c·A/T`` and equals the quantized activation itself when ``T = A``.

**Integer formulation** (every quantity multiplied by ``T``). Layer ``n`` with integer
``w, b, R`` and levels ``A_n``, fed by a map with levels ``A_in``:

* threshold ``θ = R·A_n``; membrane ``V`` starts at 0;
* at each of the first ``T`` steps ``V += b`` (the bias, spread over the steps);
* every input spike of sign ``s`` from neuron ``j`` adds ``s·w_j·A_in``; with *analog*
  input the first layer instead receives the constant current ``b + Σ_j w_j·a0_j`` per step
  for ``T`` steps (rate ``a0/A_0`` times ``w·A_0``);
* then at most one spike per step: ``+1`` if ``V ≥ θ`` and the net count ``c < T``
  (``V -= θ``); the *bipolar* neuron also fires ``−1`` if ``V < 0`` and ``c > 0``
  (``V += θ``), undoing over-firing;
* layers pass spikes on in the same step (no synaptic delay); a max-pool passes on the
  changes of the running maximum of its inputs' net counts (so pooled counts are the max of
  the counts); the readout integrates without firing: ``logits = T·b + A_in·Σ w·c``
  (``T`` times the decoded logit; the argmax is unchanged).

So after all steps ``V + θ·c = Q`` with the charge ``Q = T·b + A_in·Σ_j w_j·c_j``.

**What is exact** (proofs below; :func:`rate_quantized` is the closed form they name):

1. *First spiking layer, analog input* (unipolar and bipolar, any ``T``): its counts are
   ``clip(floor(T·y / (R·A_1)), 0, T)`` with ``y = b + Σ w·a0``; for ``T = A_1`` exactly the
   quantized activations ``clip(floor(y/R), 0, A_1)``. Max-pools right after it too.
   *Proof.* Per step the current is the constant ``y``. If ``0 ≤ y < θ``, induction on ``k``
   gives ``V_k = k·y − θ·c_k ∈ [0, θ)`` with ``c_k = floor(k·y/θ)``: ``V_{k-1} + y < 2θ``
   needs at most one spike and lands in ``[0, θ)`` after it. If ``y ≥ θ`` it fires every
   step (``V`` stays ``≥ 0``): ``c = T``. If ``y < 0``, ``V < 0`` and ``c = 0`` throughout
   (the bipolar neuron cannot fire ``−1`` at ``c = 0``). So ``c_T = clip(floor(T·y/θ), 0, T)``
   and at ``T = A_1``, ``floor(A_1·y/(R·A_1)) = floor(y/R)``. (Any start ``V0 ∈ [0, A_1)``
   gives the same counts at ``T = A_1``; the round-to-nearest offset ``θ/2`` of QCFS-style
   conversions would not, because the integer network floors.)
2. *Bipolar, settled*: once a layer's input is silent (and the bias steps are over), its
   net count reaches ``c* = clip(floor(Q/θ), 0, T)`` within ``T`` steps and stays there.
   *Proof.* ``V = Q − θ·c`` with ``Q`` fixed. If ``c < c*`` then ``V ≥ θ`` and ``c < T``:
   it fires ``+1``. If ``c > c*`` then ``V < 0`` and ``c > 0``: it fires ``−1``. At
   ``c = c*`` either ``V ∈ [0, θ)``, or ``c* = T`` (cap), or ``c* = 0`` with ``V < 0``:
   silent. Each step moves ``c`` one closer and ``|c − c*| ≤ T``. By induction over the
   layers, ``correction_steps ≥ T`` per spiking layer fed by spikes (the default,
   :func:`sufficient_correction_steps`) makes every count equal :func:`rate_quantized`'s,
   which is the quantized network (``closed_form``) when ``T = A_n`` for every spiking layer
   and the input is analog or ``A_0`` divides ``T`` (then ``c_j = a_j`` and ``Q = T·y``,
   logits ``= T·y_L``, classes equal).
3. *Not exact*: unipolar layers fed by spikes. A spike cannot be taken back when negative
   charge arrives later (over-firing), and charge arriving late cannot leave in time at
   one spike per step (under-firing); the tests build both. Nor is anything exact at
   ``T ≠ A_n``: rate coding then computes a network with ``T`` levels, another
   quantization (decoded ``c·A/T``), and the bipolar variant before its correction steps.

**Sequences.** A recurrent layer's spikes of sequence step ``t − 1`` are fed back in step
``t``'s window as they were sent (a delay of one window): each spike of ``h_{t−1}`` adds
``A_h·u`` like any input spike, so ``Q = T·b + A_x·Σ w·c_x + A_h·Σ u·c_h``. Per-step layers
run once per sequence step, each step its own ``T + correction`` steps; the layers after the
last recurrent one see its last step. Claim 2 carries over layer by layer and step by step:
a recurrent layer's inputs of step ``t`` are silent once ``x_t`` and the fed-back
``h_{t−1}`` are, so its bound grows by ``T`` per sequence step
(:func:`sufficient_correction_steps` computes it); unipolar recurrent layers are fed by
spikes and not exact.

Costs per sample: ``positive_spikes`` / ``negative_spikes`` of neurons in spiking layers
(max-pool outputs and the input not counted, as in the golden model), ``input_spikes``,
``synaptic_ops`` (spike-driven ``V += w`` additions: spikes of either sign × fan-out, input
spikes included) and, with analog input, ``input_macs`` (the constant first-layer current:
one multiply-accumulate per synapse of a non-zero input, computed once).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onespike.errors import OnespikeError
from onespike.ir import MaxPool, Network, Recurrent
from onespike.sim.golden import _run as _run_layers
from onespike.sim.golden import (_bias, _check_input, _max_pool, _weighted_sum,
                                 synaptic_fanout)

__all__ = ["RateTrace", "rate_sim", "rate_quantized", "rate_summary", "input_trains",
           "sufficient_correction_steps", "guaranteed_exact", "CODINGS"]

#: ``input_coding`` values: constant current (direct encoding) or IF-encoded spike trains.
CODINGS = ("analog", "spikes")


@dataclass(frozen=True)
class RateTrace:
    """One rate-coded run over a batch (see the module docstring for the exactness claims).

    ``counts[i]`` is the net spike count map (positive minus negative spikes) that feeds
    ``net.layers[i]``; ``counts[0]`` is ``a0`` with analog input, else the input spike
    counts ``floor(T·a0/A_0)``. ``negative_counts[i]`` the negative spikes of that map.
    ``silent_from[i]`` per sample: the step from which map ``i`` has no more spikes (0 if it
    never spiked; the analog input counts as ``T``). ``logits`` are ``T`` times the decoded
    logits. ``trains`` (only with ``keep_trains``) holds the signed spike trains, shape
    ``(total_steps, batch, *shape)``. A sequence network's per-step maps carry the sequence
    step after the batch: counts ``(batch, steps, *shape)``, trains ``(total_steps, batch,
    steps, *shape)`` (each sequence step's window from its own step 0).
    """
    steps: int
    total_steps: int
    bipolar: bool
    input_coding: str
    counts: tuple
    negative_counts: tuple
    silent_from: tuple
    logits: np.ndarray
    classes: np.ndarray
    input_spikes: np.ndarray
    positive_spikes: np.ndarray
    negative_spikes: np.ndarray
    synaptic_ops: np.ndarray
    input_macs: np.ndarray
    trains: tuple = None

    @property
    def spikes(self) -> np.ndarray:
        """Spikes of the spiking layers' neurons per sample, both signs."""
        return self.positive_spikes + self.negative_spikes


def _check_steps(steps, name="steps", minimum=1):
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, not {steps!r}")
    return int(steps)


def _spiking_inputs(net: Network, input_coding: str) -> int:
    """Spiking layers whose input is a spike train (all but an analog-fed first one; a
    recurrent layer over two or more steps is fed by its own spikes)."""
    count, analog = 0, input_coding == "analog"
    for layer in net.layers[:-1]:
        if isinstance(layer, MaxPool):
            continue
        count += not analog or (isinstance(layer, Recurrent) and (net.steps or 1) > 1)
        analog = False
    return count


def _settled_by(net: Network, steps: int, input_coding: str) -> int:
    """The step of a window by which every spiking layer's bipolar count has settled, in
    every sequence step (claim 2: ``T`` steps after its inputs fall silent and the bias
    steps are over; a recurrent layer's fed-back state is silent when it was in the step
    before)."""
    analog, latest, own = input_coding == "analog", 0, {}
    windows = net.steps or 1
    for t in range(windows):
        silent, fed = (0 if analog else steps), not analog
        stop = net.per_step_layers if t < windows - 1 else len(net.layers) - 1
        for i, layer in enumerate(net.layers[:stop]):
            if isinstance(layer, MaxPool):
                continue
            if isinstance(layer, Recurrent) and t > 0:
                silent, fed = max(silent, own[i]), True
            silent = max(silent, steps) + steps if fed else steps
            own[i], fed, latest = silent, True, max(latest, silent)
    return latest


def sufficient_correction_steps(net: Network, steps: int, input_coding="analog") -> int:
    """Extra steps after the ``T`` input steps that guarantee settled bipolar counts:
    ``T`` per spiking layer fed by spikes (claim 2 of the module docstring); for a
    sequence, the bound over all its steps (``T`` more per step for a recurrent layer)."""
    return max(0, _settled_by(net, _check_steps(steps), input_coding) - steps)


def guaranteed_exact(net: Network, *, steps: int, bipolar=False, input_coding="analog",
                     correction_steps=None) -> bool:
    """Whether claims 1–2 of the module docstring make every spike count equal the quantized
    activation (and the logits ``T`` times the integer logits): ``T = A_n`` for every
    spiking layer, ``A_0 | T`` for spike-coded input, and either the bipolar neuron with at
    least :func:`sufficient_correction_steps`, or no spiking layer fed by spikes (unipolar
    with analog input and at most one hidden layer). ``False`` means "not proved", not
    "wrong": a run may still happen to match."""
    steps = _check_steps(steps)
    if any(layer.levels != steps for layer in net.layers[:-1]
           if not isinstance(layer, MaxPool)):
        return False
    if input_coding == "spikes" and steps % net.encoder.levels:
        return False
    if not bipolar:
        return _spiking_inputs(net, input_coding) == 0
    needed = sufficient_correction_steps(net, steps, input_coding)
    return correction_steps is None or correction_steps >= needed


def input_trains(a0, levels: int, steps: int, total_steps=None) -> np.ndarray:
    """IF-encoded input: ``a`` fires at step ``k`` when ``floor((k+1)·a/A)`` steps up,
    ``floor(T·a/A)`` spikes in ``T`` steps, evenly spread. Shape ``(total, *a0.shape)``."""
    total = steps if total_steps is None else total_steps
    k = np.arange(steps + 1).reshape((-1,) + (1,) * np.ndim(a0))
    cum = (k * np.asarray(a0, np.int64)) // levels
    trains = np.zeros((total,) + np.shape(a0), np.int8)
    trains[:steps] = np.diff(cum, axis=0)
    return trains


def _fire(charge, threshold, steps, bipolar):
    """IF neurons with reset by subtraction over the per-step ``charge`` (time first)."""
    v = np.zeros(charge.shape[1:], np.int64)
    c = np.zeros_like(v)
    out = np.zeros(charge.shape, np.int8)
    for k in range(len(charge)):
        v += charge[k]
        pos = (v >= threshold) & (c < steps)
        neg = (v < 0) & (c > 0) if bipolar else np.zeros_like(pos)
        v += threshold * (neg.astype(np.int64) - pos)
        c += pos.astype(np.int64) - neg
        out[k] = pos.astype(np.int8) - neg
    return out


def _charge(layer, source, analog, in_levels, steps, total):
    """Per-step charge ``(total, batch, *out)`` of a synaptic layer: bias for ``T`` steps,
    plus the analog current or ``A_in·w`` per input spike."""
    bias = np.broadcast_to(_bias(layer), (source.shape[-len(layer.in_shape) - 1],)
                           + tuple(layer.out_shape)).astype(np.int64)
    if analog:
        current = bias + _weighted_sum(layer, source)
        charge = np.zeros((total,) + current.shape, np.int64)
        charge[:steps] = current
        return charge
    flat = source.reshape((-1,) + source.shape[2:])
    charge = in_levels * _weighted_sum(layer, flat).reshape(source.shape[:2]
                                                             + tuple(layer.out_shape))
    charge[:steps] += bias
    return charge


def _pool_trains(trains, layer):
    """Max-pool of spike trains: the changes of the max of the running net counts."""
    running = np.cumsum(trains, axis=0, dtype=np.int64)
    flat = running.reshape((-1,) + trains.shape[2:])
    pooled = _max_pool(flat, layer).reshape(trains.shape[:2] + tuple(layer.out_shape))
    return np.diff(pooled, axis=0, prepend=0).astype(np.int8)


def _silent_from(trains):
    """Per sample: 1 + the last step with a spike anywhere in the map (0 if none)."""
    active = (trains != 0).reshape(trains.shape[0], trains.shape[1], -1).any(axis=2)
    last = len(trains) - np.argmax(active[::-1], axis=0)
    return np.where(active.any(axis=0), last, 0)


def _readout(layer, counts, analog, in_levels, steps):
    scale = steps if analog else in_levels
    y = steps * _bias(layer) + scale * _weighted_sum(layer, counts)
    return y.reshape(len(y), -1)


def _run(net, a0, steps, total, bipolar, analog):
    """Signed spike trains, time first (``None`` for an analog map), of every layer input;
    the logits; the recurrent layers' trains ``{layer: (total, batch, steps, outputs)}``.

    The golden model's layer walk drives it (once per sequence step for the per-step
    layers); since that walk stacks per-step maps on axis 1, trains travel batch first
    between the layers and are turned time first here."""
    first = next((i for i, l in enumerate(net.layers) if not isinstance(l, MaxPool)), 0)

    def layer_step(i, source, state):
        layer, is_analog = net.layers[i], analog and i <= first
        if not is_analog:
            source = input_trains(source, net.encoder.levels, steps, total) if i == 0 \
                else np.moveaxis(source, 1, 0)
        if isinstance(layer, MaxPool):
            return _max_pool(source, layer) if is_analog \
                else np.moveaxis(_pool_trains(source, layer), 0, 1)
        if layer.is_readout:
            counts = source if is_analog else source.sum(axis=0, dtype=np.int64)
            return _readout(layer, counts, is_analog, net.in_levels(i), steps)
        charge = _charge(layer, source, is_analog, net.in_levels(i), steps, total)
        if state is not None and state.ndim == 3:   # h_{t−1}'s trains (zeros before t = 0)
            charge += layer.levels * (np.moveaxis(state, 1, 0) @ layer.recurrent.T)
        threshold = layer.per_channel(layer.ramp * layer.levels)
        return np.moveaxis(_fire(charge, threshold, steps, bipolar), 0, 1)

    maps, logits, states = _run_layers(net, a0, layer_step)
    trains = [None if analog else input_trains(maps[0], net.encoder.levels, steps, total)]
    for i, m in enumerate(maps[1:], start=1):
        trains.append(None if analog and i <= first
                      else np.moveaxis(m, 2 if net.per_step(i) else 1, 0))
    return trains, logits, {i: np.moveaxis(h, 2, 0) for i, h in states.items()}


def rate_sim(net: Network, a0, *, steps: int, bipolar=False, correction_steps=None,
             input_coding="analog", keep_trains=False) -> RateTrace:
    """Simulate the rate-coded network on integer inputs ``a0`` for ``T = steps`` steps.

    Unipolar runs ``T`` steps. Bipolar runs ``T + correction_steps`` (default
    :func:`sufficient_correction_steps`: every count settled, claim 2); the bias and the
    input are applied during the first ``T`` only.
    """
    a0 = _check_input(net, a0)
    steps = _check_steps(steps)
    if input_coding not in CODINGS:
        raise ValueError(f"input_coding must be one of {CODINGS}, not {input_coding!r}")
    analog = input_coding == "analog"
    if not bipolar:
        extra = _check_steps(correction_steps or 0, "correction_steps", 0)
        if extra:
            raise ValueError("correction steps need the bipolar neuron")
    elif correction_steps is None:
        extra = sufficient_correction_steps(net, steps, input_coding)
    else:
        extra = _check_steps(correction_steps, "correction_steps", 0)
    trains, logits, states = _run(net, a0, steps, steps + extra, bipolar, analog)
    return _trace(net, a0, trains, logits, states, steps=steps, extra=extra, bipolar=bipolar,
                  input_coding=input_coding, keep_trains=keep_trains)


def _trace(net, a0, trains, logits, states, *, steps, extra, bipolar, input_coding, keep_trains):
    batch = len(a0)
    zeros = np.zeros(batch, np.int64)
    counts, negative, silent = [], [], []
    pos_spikes, neg_spikes, synops, macs = zeros, zeros, zeros, zeros
    analog_map = a0
    for i, (train, layer) in enumerate(zip(trains, net.layers)):
        if train is None:  # analog map (the input and max-pools of it)
            counts.append(analog_map)
            negative.append(np.zeros_like(analog_map))
            silent.append(np.full(batch, steps))
            if not isinstance(layer, MaxPool):
                macs = macs + _per_sample((analog_map > 0) * synaptic_fanout(layer))
            else:
                analog_map = _pooled(analog_map, layer)
            continue
        pos = (train > 0).sum(axis=0, dtype=np.int64)
        neg = (train < 0).sum(axis=0, dtype=np.int64)
        counts.append(pos - neg)
        negative.append(neg)
        silent.append(_silent_from(train))
        if not isinstance(layer, MaxPool):
            synops = synops + _per_sample((pos + neg) * synaptic_fanout(layer))
        if i > 0 and not isinstance(net.layers[i - 1], MaxPool):
            pos_spikes = pos_spikes + _per_sample(pos)
            neg_spikes = neg_spikes + _per_sample(neg)
    for i, h in states.items():      # h_0 … h_{T−2} also feed the layer itself
        looped = np.abs(h[:, :, :-1]).sum(axis=0, dtype=np.int64)
        synops = synops + _per_sample(looped) * net.layers[i].out_shape[0]
        if not net.per_step(i + 1):      # the next layer sees the last step only
            pos_spikes = pos_spikes + _per_sample((h[:, :, :-1] > 0).sum(axis=0))
            neg_spikes = neg_spikes + _per_sample((h[:, :, :-1] < 0).sum(axis=0))
    input_spikes = zeros if input_coding == "analog" else _per_sample(counts[0])
    return RateTrace(steps=steps, total_steps=steps + extra, bipolar=bool(bipolar),
                     input_coding=input_coding, counts=tuple(counts),
                     negative_counts=tuple(negative), silent_from=tuple(silent),
                     logits=logits, classes=np.argmax(logits, axis=1),
                     input_spikes=input_spikes, positive_spikes=pos_spikes,
                     negative_spikes=neg_spikes, synaptic_ops=synops, input_macs=macs,
                     trains=tuple(trains) if keep_trains else None)


def _pooled(a, layer):
    """Max-pool of a map, per sequence step where it has one."""
    lead = a.shape[:a.ndim - len(layer.in_shape)]
    flat = _max_pool(a.reshape((-1,) + tuple(layer.in_shape)), layer)
    return flat.reshape(lead + tuple(layer.out_shape))


def _per_sample(a):
    return a.reshape(len(a), -1).sum(axis=1)


def rate_quantized(net: Network, a0, *, steps: int, input_coding="analog"):
    """The network a settled rate code computes: ``(counts, logits)`` in closed form.

    Each spiking layer: ``c = clip(floor(Q / (R·A_n)), 0, T)`` with ``Q = T·b + s·Σ w·c_in``
    (``s = T`` on the analog input, else ``A_in``); max-pool takes the max; the readout's
    ``Q`` is the logit vector; a recurrent layer adds ``A_h·Σ u·c_{t−1}`` of its own counts
    of the step before. ``counts`` is laid out like :attr:`RateTrace.counts`. At
    ``T = A_n`` for all spiking layers (and analog input or ``A_0 | T``) this is
    ``closed_form`` with logits multiplied by ``T``.
    """
    a0 = _check_input(net, a0)
    steps = _check_steps(steps)
    if input_coding not in CODINGS:
        raise ValueError(f"input_coding must be one of {CODINGS}, not {input_coding!r}")
    analog, levels = input_coding == "analog", net.encoder.levels
    first = next((i for i, l in enumerate(net.layers) if not isinstance(l, MaxPool)), 0)

    def layer_step(i, c, h):
        layer, is_analog = net.layers[i], analog and i <= first
        if i == 0 and not analog:
            c = steps * c // levels
        if isinstance(layer, MaxPool):
            return _max_pool(c, layer)
        q = steps * _bias(layer) + (steps if is_analog else net.in_levels(i)) \
            * _weighted_sum(layer, c)
        if h is not None:                # the state of the step before: A_h per count
            q = q + layer.levels * (h @ layer.recurrent.T)
        if layer.is_readout:
            return q.reshape(len(q), -1)
        return np.clip(q // layer.per_channel(layer.ramp * layer.levels), 0, steps)

    maps, logits, _ = _run_layers(net, a0, layer_step)
    if not analog:
        maps[0] = steps * maps[0] // levels
    return tuple(maps), logits


def rate_summary(net: Network, x, labels=None, *, steps: int, bipolar=False,
                 correction_steps=None, input_coding="analog", batch=256):
    """Run :func:`rate_sim` on float inputs ``x`` in batches; ``(summary dict, classes)``.

    The dict has the keys of ``onespike simulate``'s TTFS summary (``accuracy``,
    ``spikes_per_neuron``, ``spikes_per_inference``, ``input_spikes_per_inference``,
    ``synaptic_ops_per_inference``, ``latency_steps``) plus ``negative_spikes_per_inference``,
    ``input_macs_per_inference``, ``steps``, ``total_steps``, ``settled_step`` (the
    largest step from which the last spiking layer was silent, over all samples) and
    ``guaranteed_exact`` (:func:`guaranteed_exact`: proved equal to the quantized network).
    """
    if labels is not None and len(labels) != len(x):
        raise OnespikeError(f"{len(labels)} labels for {len(x)} input samples")
    a0 = net.encoder.encode(x)
    classes, tot = [], dict(spikes=0, neg=0, inp=0, ops=0, macs=0)
    settled, total = 0, steps
    for start in range(0, len(a0), batch):
        t = rate_sim(net, a0[start:start + batch], steps=steps, bipolar=bipolar,
                     correction_steps=correction_steps, input_coding=input_coding)
        classes.append(t.classes)
        for key, value in (("spikes", t.spikes), ("neg", t.negative_spikes),
                           ("inp", t.input_spikes), ("ops", t.synaptic_ops),
                           ("macs", t.input_macs)):
            tot[key] += int(value.sum())
        settled, total = max(settled, int(t.silent_from[-1].max(initial=0))), t.total_steps
    classes = np.concatenate(classes) if classes else np.zeros(0, np.int64)
    neurons = sum(int(np.prod(l.out_shape)) for l in net.layers[:-1]
                  if not isinstance(l, MaxPool))
    n = max(len(x), 1)
    mode = "rate-bipolar" if bipolar else "rate"
    return {"samples": int(len(x)), "mode": mode, "steps": steps, "total_steps": total,
            "input_coding": input_coding,
            "accuracy": None if labels is None else float(np.mean(classes == labels)),
            "spikes_per_neuron": tot["spikes"] / n / max(neurons, 1),
            "spikes_per_inference": tot["spikes"] / n,
            "negative_spikes_per_inference": tot["neg"] / n,
            "input_spikes_per_inference": tot["inp"] / n,
            "synaptic_ops_per_inference": tot["ops"] / n,
            "input_macs_per_inference": tot["macs"] / n,
            "settled_step": settled, "latency_steps": total,
            "guaranteed_exact": guaranteed_exact(net, steps=steps, bipolar=bipolar,
                                                 input_coding=input_coding,
                                                 correction_steps=correction_steps)}, classes
