"""The golden model: the one bit-exact reference that every test and testbench imports.

Two evaluations of a :class:`~onespike.ir.Network`, batched over samples, integer only:

* :func:`closed_form` — the quantized ReLU network, ``a = clip(floor(y / R), 0, A)``.
* :func:`event_sim` — the spiking network step by step: input spikes, ``I += w`` per spike,
  ``V += I`` per step, then the firing ramp ``V += R`` per step against ``A·R``.

Both return a :class:`Trace`. Spikes of activation 0 (which would fall on the last step of a
window and carry nothing) are left out, as the hardware leaves them out: their time is
:data:`~onespike.ir.NO_SPIKE`.

A sequence network (``net.steps = T``, a :class:`~onespike.ir.Recurrent` layer) takes inputs
``(batch, T, *shape)``; its per-step layers run once per sequence step, each step one window,
a recurrent layer integrating the spikes of ``x_t`` and of its own ``h_{t−1}`` in that window
(``h_{−1} = 0``); the layers after the last recurrent one see its last step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onespike.ir import NO_SPIKE, Conv, Dense, MaxPool, Network, Recurrent

__all__ = ["Trace", "closed_form", "event_sim", "spike_times", "synaptic_fanout"]


@dataclass(frozen=True)
class Trace:
    """What one evaluation of a network produced for a batch of samples.

    ``activations[i]`` is the integer spike map that feeds ``net.layers[i]`` (``[0]`` is the
    encoded input), shape ``(batch, *layer.in_shape)``, or ``(batch, steps, *in_shape)``
    where ``net.per_step(i)`` (a sequence network's per-step layers); ``times[i]`` the same map as spike
    time steps (``NO_SPIKE`` where the activation is 0). ``logits`` ``(batch, classes)``,
    ``classes`` the argmax with ties to the lowest index. ``input_spikes``, ``spikes``
    (neurons of the spiking layers, max-pool outputs not counted) and ``synaptic_ops``
    (``I += w`` additions) are per sample. ``peak_current`` / ``peak_membrane`` give per
    layer the largest ``|I|`` / ``|V|`` seen (event simulation only, else ``None``).
    """
    activations: tuple
    times: tuple
    logits: np.ndarray
    classes: np.ndarray
    input_spikes: np.ndarray
    spikes: np.ndarray
    synaptic_ops: np.ndarray
    peak_current: tuple = None
    peak_membrane: tuple = None


# -- integer building blocks -----------------------------------------------------------
def _sum_pool(a, pool):
    b, c, h, w = a.shape
    kh, kw = pool
    h, w = h // kh * kh, w // kw * kw
    return a[:, :, :h, :w].reshape(b, c, h // kh, kh, w // kw, kw).sum(axis=(3, 5))


def _windows(a, kernel, stride, padding):
    """(B, C, Ho, Wo, kh, kw) view of the zero-padded map ``a`` (B, C, H, W)."""
    (ph, pw), (sh, sw) = padding, stride
    if ph or pw:
        a = np.pad(a, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    view = np.lib.stride_tricks.sliding_window_view(a, tuple(kernel), axis=(2, 3))
    return view[:, :, ::sh, ::sw]


def _max_pool(a, layer: MaxPool):
    # Padding with 0 is exact: activations are ≥ 0 and spike masks are 0/1.
    return _windows(a, layer.kernel, layer.stride, layer.padding).max(axis=(4, 5))


def _weighted_sum(layer, a):
    """``Σ_j w_ij a_j`` (no bias) for a batch of input maps, int64."""
    a = a.astype(np.int64, copy=False)
    if isinstance(layer, Recurrent):
        return a.reshape(len(a), -1) @ layer.weight.T
    if layer.pooling:
        a = _sum_pool(a, layer.pool)
    batch = a.shape[0]
    if isinstance(layer, Dense):
        return a.reshape(batch, -1) @ layer.weight.T
    win = _windows(a, layer.kernel, layer.stride, layer.padding)
    _, _, ho, wo, _, _ = win.shape
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(batch * ho * wo, -1)
    out = cols @ layer.weight.reshape(layer.weight.shape[0], -1).T
    return out.reshape(batch, ho, wo, -1).transpose(0, 3, 1, 2)


def _bias(layer):
    if isinstance(layer, Conv) and layer.bias.ndim == 1:
        return layer.bias[:, None, None]
    return layer.bias


def synaptic_fanout(layer) -> np.ndarray:
    """Additions one spike at each input position causes (shape ``layer.in_shape``)."""
    if isinstance(layer, (Dense, Recurrent)):
        pooled = np.full(layer.pooled_shape, layer.weight.shape[0], dtype=np.int64)
    else:
        c, h, w = layer.pooled_shape
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.padding
        covered = np.zeros((h + 2 * ph, w + 2 * pw), dtype=np.int64)
        _, ho, wo = layer.out_shape
        for oy in range(ho):
            for ox in range(wo):
                covered[oy * sh:oy * sh + kh, ox * sw:ox * sw + kw] += 1
        covered = covered[ph:ph + h, pw:pw + w] * layer.weight.shape[0]
        pooled = np.broadcast_to(covered, (c, h, w))
    if not layer.pooling:
        return np.asarray(pooled)
    kh, kw = layer.pool
    full = np.zeros(layer.in_shape, dtype=np.int64)
    _, hp, wp = layer.pooled_shape
    full[:, :hp * kh, :wp * kw] = np.repeat(np.repeat(pooled, kh, axis=1), kw, axis=2)
    return full


def spike_times(activations, start, levels):
    """Spike time steps of a map of activations firing in window ``[start, start + levels]``."""
    return np.where(activations > 0, start + levels - activations, NO_SPIKE)


def _check_input(net, a0):
    a0 = np.asarray(a0)
    if a0.shape[1:] != net.encoder.sample_shape or a0.dtype.kind not in "iu":
        raise ValueError(f"input activations must be integers of shape (batch, "
                         f"{net.encoder.sample_shape}), not {a0.dtype} {a0.shape}")
    if a0.size and (a0.min() < 0 or a0.max() > net.encoder.levels):
        raise ValueError(f"input activations must lie in 0..{net.encoder.levels}")
    return a0.astype(np.int64)


def _summary(net, maps, logits, states):
    """Trace fields from the maps feeding each layer and the recurrent layers' states
    ``{layer: (batch, steps, outputs)}`` (their spikes that only loop back count too)."""
    batch = logits.shape[0]
    starts = net.window_starts()
    times = tuple(spike_times(a, starts[i], net.in_levels(i)) for i, a in enumerate(maps))
    flat = [a.reshape(batch, -1) > 0 for a in maps]
    spiking = [i for i, layer in enumerate(net.layers)
               if i > 0 and not isinstance(net.layers[i - 1], MaxPool)]
    synops = sum(((a > 0) * synaptic_fanout(layer)).reshape(batch, -1).sum(axis=1)
                 for a, layer in zip(maps, net.layers) if not isinstance(layer, MaxPool))
    spikes = sum((flat[i].sum(axis=1) for i in spiking), np.zeros(batch, np.int64))
    for i, h in states.items():           # h_0 … h_{T−2} also feed the layer itself
        looped = (h[:, :-1] > 0).reshape(batch, -1).sum(axis=1)
        synops = synops + looped * net.layers[i].out_shape[0]
        if not net.per_step(i + 1):       # the next layer sees the last step only
            spikes = spikes + looped
    return dict(activations=tuple(maps), times=times, logits=logits,
                classes=np.argmax(logits, axis=1), input_spikes=flat[0].sum(axis=1),
                spikes=spikes, synaptic_ops=synops)


def _run(net, a0, layer_step):
    """``layer_step(i, a, h)`` through the layers, once per sequence step for the per-step
    layers (``h``: a recurrent layer's previous state, zeros before the first step):
    ``(maps feeding each layer, logits, recurrent states)``."""
    a0 = _check_input(net, a0)
    per_step = net.per_step_layers
    maps, states = [], {}
    if net.steps is not None:
        batch = len(a0)
        state = {i: np.zeros((batch,) + layer.out_shape, np.int64)
                 for i, layer in enumerate(net.layers) if isinstance(layer, Recurrent)}
        frames = [[] for _ in range(per_step)]
        history = {i: [] for i in state}
        for t in range(net.steps):
            a = a0[:, t]
            for i in range(per_step):
                frames[i].append(a)
                a = layer_step(i, a, state.get(i))
                if i in state:
                    state[i] = a
                    history[i].append(a)
        maps = [np.stack(f, axis=1) for f in frames]
        states = {i: np.stack(h, axis=1) for i, h in history.items()}
    else:
        a = a0
    for i in range(per_step, len(net.layers)):
        maps.append(a)
        a = layer_step(i, a, None)
    return maps, a, states


def closed_form(net: Network, a0) -> Trace:
    """The quantized ReLU network on integer inputs ``a0`` (``net.encoder.encode(x)``)."""
    def layer_step(i, a, h):
        layer = net.layers[i]
        if isinstance(layer, MaxPool):
            return _max_pool(a, layer)
        y = _weighted_sum(layer, a) + _bias(layer)
        if h is not None:
            y = y + h @ layer.recurrent.T
        if layer.is_readout:
            return y.reshape(len(y), -1)
        return np.clip(y // layer.per_channel(layer.ramp), 0, layer.levels)
    maps, logits, states = _run(net, a0, layer_step)
    return Trace(**_summary(net, maps, logits, states))


class _EventLayers:
    """One layer over one window, time step by time step (:func:`event_sim`), keeping the
    largest ``|I|`` and ``|V|`` each layer reaches."""

    def __init__(self, net):
        self.net = net
        self.peak_current = [None if isinstance(l, MaxPool) else 0 for l in net.layers]
        self.peak_membrane = list(self.peak_current)

    def __call__(self, i, a, h):
        layer, levels = self.net.layers[i], self.net.in_levels(i)
        steps = np.where(a > 0, levels - a, NO_SPIKE)      # the input's spike steps
        if isinstance(layer, MaxPool):
            fired = np.zeros((len(a),) + layer.out_shape, dtype=bool)
            first = np.full(fired.shape, NO_SPIKE)
            for s in range(levels):         # the earliest spike of a window passes on
                out = _max_pool(steps == s, layer) & ~fired
                first[out], fired = s, fired | out
            return np.where(fired, levels - first, 0)
        window = self.net.integration_levels(i)
        inputs = [(steps, window - levels, lambda x: _weighted_sum(layer, x))]
        if h is not None:                   # h_{t−1} in the same window, aligned at its end
            inputs.append((np.where(h > 0, layer.levels - h, NO_SPIKE),
                           window - layer.levels, lambda x: x @ layer.recurrent.T))
        current = np.zeros((len(a),) + layer.out_shape, dtype=np.int64)
        membrane = np.broadcast_to(_bias(layer), current.shape).astype(np.int64)
        peak_i, peak_v = 0, int(np.abs(membrane).max(initial=0))
        for s in range(window):             # integration: I += Σ w per spike, V += I
            for spike_steps, delay, weigh in inputs:
                if s >= delay:
                    current = current + weigh((spike_steps == s - delay).astype(np.int64))
            membrane = membrane + current
            peak_i = max(peak_i, int(np.abs(current).max(initial=0)))
            peak_v = max(peak_v, int(np.abs(membrane).max(initial=0)))
        if not layer.is_readout:            # firing: V += R per step against A·R
            fired = np.zeros(current.shape, dtype=bool)
            first = np.full(current.shape, NO_SPIKE)
            threshold = layer.per_channel(layer.levels * layer.ramp)
            for k in range(layer.levels + 1):
                if k > 0:
                    membrane = membrane + layer.per_channel(layer.ramp)
                    peak_v = max(peak_v, int(np.abs(membrane).max(initial=0)))
                if k < layer.levels:
                    out = (membrane >= threshold) & ~fired
                    first[out], fired = k, fired | out
        self.peak_current[i] = max(self.peak_current[i], peak_i)
        self.peak_membrane[i] = max(self.peak_membrane[i], peak_v)
        if layer.is_readout:
            return membrane.reshape(len(a), -1)
        return np.where(fired, layer.levels - first, 0)


def event_sim(net: Network, a0) -> Trace:
    """The spiking network, time step by time step, with the B1 neuron's integer dynamics.

    Each layer in its integration phase (the window of its input) first adds the weights of
    the input spikes of step ``s`` to ``I``, then adds ``I`` to ``V``; a recurrent layer's
    window has ``max(A_x, A_h)`` steps, the spikes of ``x_t`` and of ``h_{t−1}`` aligned at
    its end (a spike of activation ``a`` at step ``window − a``). In its firing phase (step
    ``k`` of its own window) ``V`` has risen by ``k·R`` and every neuron not yet fired with
    ``V ≥ A·R`` fires; a neuron first crossing at ``k = A`` has activation 0 and stays
    silent. A max-pool passes its window's earliest spike on in the same step.
    """
    layers = _EventLayers(net)
    maps, logits, states = _run(net, a0, layers)
    return Trace(**_summary(net, maps, logits, states),
                 peak_current=tuple(layers.peak_current),
                 peak_membrane=tuple(layers.peak_membrane))
