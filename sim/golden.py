"""The golden model: the one bit-exact reference that every test and testbench imports.

Two evaluations of a :class:`~onespike.ir.Network`, batched over samples, integer only:

* :func:`closed_form` — the quantized ReLU network, ``a = clip(floor(y / R), 0, A)``.
* :func:`event_sim` — the spiking network step by step: input spikes, ``I += w`` per spike,
  ``V += I`` per step, then the firing ramp ``V += R`` per step against ``A·R``.

Both return a :class:`Trace`. Spikes of activation 0 (which would fall on the last step of a
window and carry nothing) are left out, as the hardware leaves them out: their time is
:data:`~onespike.ir.NO_SPIKE`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onespike.ir import NO_SPIKE, Conv, Dense, MaxPool, Network

__all__ = ["Trace", "closed_form", "event_sim", "spike_times", "synaptic_fanout"]


@dataclass(frozen=True)
class Trace:
    """What one evaluation of a network produced for a batch of samples.

    ``activations[i]`` is the integer spike map that feeds ``net.layers[i]`` (``[0]`` is the
    encoded input), shape ``(batch, *layer.in_shape)``; ``times[i]`` the same map as spike
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
    if isinstance(layer, Dense):
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
    if a0.shape[1:] != net.encoder.shape or a0.dtype.kind not in "iu":
        raise ValueError(f"input activations must be integers of shape (batch, "
                         f"{net.encoder.shape}), not {a0.dtype} {a0.shape}")
    if a0.size and (a0.min() < 0 or a0.max() > net.encoder.levels):
        raise ValueError(f"input activations must lie in 0..{net.encoder.levels}")
    return a0.astype(np.int64)


def _summary(net, maps, logits):
    batch = logits.shape[0]
    starts = net.window_starts()
    times = tuple(spike_times(a, starts[i], net.in_levels(i)) for i, a in enumerate(maps))
    flat = [a.reshape(batch, -1) > 0 for a in maps]
    spiking = [i for i, layer in enumerate(net.layers)
               if i > 0 and not isinstance(net.layers[i - 1], MaxPool)]
    synops = sum(((a > 0) * synaptic_fanout(layer)).reshape(batch, -1).sum(axis=1)
                 for a, layer in zip(maps, net.layers) if not isinstance(layer, MaxPool))
    return dict(activations=tuple(maps), times=times, logits=logits,
                classes=np.argmax(logits, axis=1), input_spikes=flat[0].sum(axis=1),
                spikes=sum((flat[i].sum(axis=1) for i in spiking), np.zeros(batch, np.int64)),
                synaptic_ops=synops)


def closed_form(net: Network, a0) -> Trace:
    """The quantized ReLU network on integer inputs ``a0`` (``net.encoder.encode(x)``)."""
    a = _check_input(net, a0)
    maps = []
    for layer in net.layers:
        maps.append(a)
        if isinstance(layer, MaxPool):
            a = _max_pool(a, layer)
            continue
        y = _weighted_sum(layer, a) + _bias(layer)
        if layer.is_readout:
            logits = y.reshape(len(y), -1)
        else:
            a = np.clip(y // layer.per_channel(layer.ramp), 0, layer.levels)
    return Trace(**_summary(net, maps, logits))


def event_sim(net: Network, a0) -> Trace:
    """The spiking network, time step by time step, with the B1 neuron's integer dynamics.

    At step ``t`` each layer in its integration phase (the window of its input, last step
    excluded) first adds the weights of the input spikes of step ``t`` to ``I``, then adds
    ``I`` to ``V``. In its firing phase (step ``k`` of its own window) ``V`` has risen by
    ``k·R`` and every neuron not yet fired with ``V ≥ A·R`` fires; a neuron first crossing at
    ``k = A`` has activation 0 and stays silent.
    """
    a0 = _check_input(net, a0)
    batch = len(a0)
    starts = net.window_starts()
    input_times = spike_times(a0, 0, net.encoder.levels)
    state = []
    for i, layer in enumerate(net.layers):
        shape = (batch,) + tuple(layer.out_shape)
        entry = {"times": np.full(shape, NO_SPIKE, dtype=np.int64),
                 "fired": np.zeros(shape, dtype=bool)}
        if not isinstance(layer, MaxPool):
            entry["I"] = np.zeros(shape, dtype=np.int64)
            entry["V"] = np.broadcast_to(_bias(layer), shape).astype(np.int64)
            entry["peak_I"] = 0
            entry["peak_V"] = int(np.abs(entry["V"]).max(initial=0))
        state.append(entry)
    for t in range(net.latency_steps + 1):
        spikes = input_times == t
        for i, (layer, st) in enumerate(zip(net.layers, state)):
            if isinstance(layer, MaxPool):
                out = _max_pool(spikes, layer) & ~st["fired"]
            else:
                in_start, in_levels = starts[i], net.in_levels(i)
                if in_start <= t < in_start + in_levels:  # integration phase
                    st["I"] += _weighted_sum(layer, spikes)
                    st["V"] += st["I"]
                    st["peak_I"] = max(st["peak_I"], int(np.abs(st["I"]).max(initial=0)))
                k = t - (in_start + in_levels)
                out = np.zeros_like(st["fired"])
                if not layer.is_readout and 0 <= k <= layer.levels:  # firing phase
                    if k > 0:
                        st["V"] += layer.per_channel(layer.ramp)
                    threshold = layer.per_channel(layer.levels * layer.ramp)
                    if k < layer.levels:
                        out = (st["V"] >= threshold) & ~st["fired"]
                st["peak_V"] = max(st["peak_V"], int(np.abs(st["V"]).max(initial=0)))
            st["fired"] |= out
            st["times"][out] = t
            spikes = out
    maps = [a0]
    for i, (layer, st) in enumerate(zip(net.layers[:-1], state)):
        start = starts[i + 1]
        levels = net.in_levels(i + 1)
        maps.append(np.where(st["times"] == NO_SPIKE, 0, start + levels - st["times"]))
    logits = state[-1]["V"].reshape(batch, -1)
    summary = _summary(net, maps, logits)
    # The times are the simulation's own, not re-derived from the activations.
    summary["times"] = (input_times,) + tuple(st["times"] for st in state[:-1])
    return Trace(**summary,
                 peak_current=tuple(st.get("peak_I") for st in state),
                 peak_membrane=tuple(st.get("peak_V") for st in state))
