"""Cycle model of the dense baseline (:class:`~onespike.hdl.dense_top.DenseAccelerator`),
as :mod:`onespike.hdl.cycles` is for the TTFS accelerator.

Stages, per sample, from the state machines in :mod:`onespike.hdl.mac` (``n_k``: the
transfers on the stream into layer ``k`` — the non-zero activations with ``skip_zeros``,
every neuron without):

* source: ``neurons + 1`` (one input per cycle, then the end marker);
* dense/conv accumulate: ``fan_out · n_k + 4`` (``fan_out`` = ``groups`` or
  ``K·K·groups``; the next activation is taken in the last cycle of the previous one; the
  three-stage multiply-accumulate pipeline empties before the bank is handed over);
* requantize (hidden layer): ``words · (1 + act_bits) + max(n_{k+1}, words) + 2`` (per word a
  load, ``act_bits`` compare-subtract cycles for ``P`` lanes at once, then its activations
  one per cycle, at least one cycle);
* readout: ``groups + classes + 1``;
* max pool (one bank, accept then drain): ``(1 + span²) · n_k + 1`` and ``outputs + 1``.

A stream lasts ``max(producer + consumer's tail, consumer + producer's head)`` (the head:
cycles before the first transfer, ``2 + act_bits`` for a requantizer; the tail: cycles after
the last one, ``fan_out + 1``). Accumulate and requantize use two banks, so in steady state a
result leaves every ``max(stage, stream)`` cycles; one sample's latency is the sum of its
streams plus the readout.
"""

import numpy as np

from onespike.hdl.mac import ActivationPoolSizes

__all__ = ["dense_cycle_estimate", "stream_transfers"]


def stream_transfers(top, activations) -> list:
    """Per stream into layer ``k``, the activation transfers of one sample (mean over the
    samples of ``activations``, the golden model's maps)."""
    out = []
    for a in activations:
        a = np.asarray(a).reshape(len(a), -1)
        out.append(float((a > 0).sum(axis=1).mean()) if top.skip_zeros else a.shape[1])
    return out


def _synapse_work(top, activations) -> list:
    """Per stream into a MAC layer, the mean multiply-accumulate cycles of one sample: each
    sent activation costs the synapses it reaches (at least its one accept cycle)."""
    work = []
    for core, a in zip(top.cores, activations):
        a = np.asarray(a).reshape(len(a), -1)
        sent = a > 0 if top.skip_zeros else np.ones_like(a, dtype=bool)
        if isinstance(core, ActivationPoolSizes):
            work.append(None)
            continue
        cost = np.maximum(core._geometry.spike_cycles, 1)
        work.append(float((sent * cost).sum(axis=1).mean()))
    return work


def dense_cycle_estimate(top, transfers=None, activations=None) -> dict:
    """Cycles per sample of ``top``. ``transfers[k]``: activations sent on the stream into
    layer ``k`` (:func:`stream_transfers`); ``None`` assumes every neuron is sent (no
    zeros, or ``skip_zeros=False``: the most work a sample can bring). With the golden
    model's ``activations`` (maps into each layer), counts and the synapses each sent
    activation reaches come from them."""
    net = top.net
    work = [None] * len(top.cores)
    if activations is not None:
        transfers = stream_transfers(top, activations)
        work = _synapse_work(top, activations)
    sizes = [int(np.prod(net.encoder.shape))] + [int(np.prod(l.out_shape))
                                                  for l in net.layers]
    n = list(sizes[:-1] if transfers is None else transfers)
    stages = {"source": sizes[0] + 1}
    # per stream: producer cycles, cycles before its first transfer; consumer cycles,
    # cycles after its last transfer
    producers, heads, consumers, tails = [stages["source"]], [0], [], []
    pools = {}
    for k, core in enumerate(top.cores):
        if isinstance(core, ActivationPoolSizes):
            take = (1 + core.fan_out) * n[k] + 1
            pools[k] = take
            consumers.append(take)
            tails.append(core.fan_out + 1)
            producers.append(core.outputs + 1)
            heads.append(1)
            continue
        stages[f"layer{k}_accumulate"] = (core.fan_out * n[k] if work[k] is None
                                          else work[k]) + 4
        consumers.append(stages[f"layer{k}_accumulate"])
        tails.append(core.fan_out + 3)
        if k < len(top.cores) - 1:
            layer = net.layers[k]
            stages[f"layer{k}_requantize"] = core.words * (1 + layer.act_bits) \
                + max(n[k + 1], core.words) + 2
            producers.append(stages[f"layer{k}_requantize"])
            heads.append(2 + layer.act_bits)
    streams = [max(p + t, c + h) for p, h, c, t in zip(producers, heads, consumers, tails)]
    for k, take in pools.items():   # one bank: the next sample waits for the drain
        stages[f"layer{k}_maxpool"] = max(streams[k], take) + streams[k + 1]
    stages["readout"] = top.cores[-1].groups + sizes[-1] + 1
    latency = sum(streams) + stages["readout"]
    # a stream holds its producer's and its consumer's bank until it is done
    steady = max(max(stages.values()), max(streams))
    return {"stages": stages, "streams": streams, "steady": steady, "latency": latency}
