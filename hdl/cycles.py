"""Cycle model of the accelerator: what each stage costs per sample, from the design.

Every stage works on one sample at a time. A spike stream couples its producer (the
encoder's send, a core's firing phase, a max-pooling core) to its consumer (a core's
integration phase, a max-pooling core): the consumer takes each spike only when it is done
with the previous one, so the producer waits while the consumer is busy, and vice versa.
A max-pooling core has no second bank: it passes spikes on in the same step, so the
firing phase before it, the pooling and the integration after it form one chain.

Per sample (``S`` spikes in, ``c(j)`` integration cycles of input spike ``j``, ``A_in``
input steps, ``W`` state words, ``A`` own steps, ``S'`` spikes out):

* integration: ``Σ c(j) + A_in`` (one cycle per end-of-step marker; the state words are
  never swept);
* firing: ``A·(W + 1) + S' + 1`` (one word per cycle and step, one cycle per spike sent,
  an end-of-step marker per step);
* max pooling: ``(1 + span²)·S + 2·A + pooled neurons`` (fired bits cleared after the window);
* encoder: ``inputs + 1`` to load, ``2·A0 + S0`` to send; readout: ``classes + groups + 1``.

A chain's time is the slower side plus the coupling: every spike the producer sends while
the consumer is still busy with the previous one waits, which costs about one cycle per
spike on top of the slower side. In steady state a sample leaves every
``max(stages, chains)`` cycles; a single sample's latency is the input load, plus each
chain, plus the readout. ``bench/hdl_cycles.py`` and ``bench/lean_table.py`` put the model
next to measured cycles.
"""

import numpy as np

from onespike.hdl.maxpool import MaxPoolCore

__all__ = ["cycle_estimate", "integration_cycles"]


def integration_cycles(core, spikes):
    """Integration cycles of :class:`~onespike.hdl.core.NeuronCore` ``core`` for ``spikes``:
    a count (every input position equally likely) or spike maps (``(..., *in_shape)``,
    nonzero = spike; the mean over leading axes)."""
    per = core.spike_cycles
    if np.ndim(spikes) == 0:
        return float(spikes) * float(per.mean())
    maps = np.asarray(spikes).reshape(-1, len(per)) != 0
    return float((maps @ per).mean())


def _count(spikes):
    return float(spikes) if np.ndim(spikes) == 0 else \
        float((np.asarray(spikes) != 0).reshape(len(np.asarray(spikes)), -1).sum(1).mean()) \
        if np.ndim(spikes) > 1 else float((np.asarray(spikes) != 0).sum())


def cycle_estimate(top, spikes=None) -> dict:
    """Cycles per sample of :class:`~onespike.hdl.top.Accelerator` ``top``. ``spikes[n]`` is
    what the stream into layer ``n`` carries (``spikes[0]``: input spikes): a count, or
    spike maps (then each spike's integration cost follows its position); ``None`` assumes
    every neuron spikes (the most work a sample can bring)."""
    net = top.net
    sizes = [int(np.prod(net.encoder.shape))] + [int(np.prod(l.out_shape))
                                                  for l in net.layers]
    spikes = list(sizes[:-1] if spikes is None else spikes)
    counts = [_count(s) for s in spikes]
    levels = [net.in_levels(n) for n in range(len(net.layers))]
    stages = {"encoder_load": sizes[0] + 1}
    chain = {"encoder_send": 2 * levels[0] + counts[0]}
    chains = {}

    def close(name):
        slowest = max(chain.values())
        chains[name] = slowest + (counts_into if len(chain) > 1 else 0)
        stages.update(chain)
        chain.clear()

    for n, core in enumerate(top.cores):
        counts_into = counts[n]
        if isinstance(core, MaxPoolCore):
            chain[f"layer{n}_maxpool"] = (1 + core.span ** 2) * counts[n] + 2 * levels[n] \
                + core.fired_memory_bits
            continue
        chain[f"layer{n}_integrate"] = integration_cycles(core, spikes[n]) + levels[n] + 2
        close(f"stream{n}")
        if n < len(top.cores) - 1:
            layer = net.layers[n]
            chain[f"layer{n}_fire"] = layer.levels * (core.words + 1) + counts[n + 1] + 1
    stages["readout"] = sizes[-1] + top.cores[-1].groups + 1
    stages = {k: int(round(v)) for k, v in stages.items()}
    chains = {k: int(round(v)) for k, v in chains.items()}
    latency = stages["encoder_load"] + sum(chains.values()) + stages["readout"] + 1
    return {"stages": stages, "chains": chains,
            "steady": max(max(stages.values()), max(chains.values())), "latency": latency}
