"""Cycle model of the accelerator: what each stage costs per sample, from the design.

Every stage handles one sample at a time and hands it on (two banks), so in steady state a
sample leaves every ``max(stage)`` cycles; a single sample's latency is the input load
plus, for each stream, the slower of its producer and consumer, plus the readout. The
counts follow the state machines in :mod:`~onespike.hdl.encoder`, :mod:`~onespike.hdl.core`
and :mod:`~onespike.hdl.maxpool`; ``bench/hdl_cycles.py`` puts them next to measured cycles.
"""

import numpy as np

from onespike.hdl.maxpool import MaxPoolCore

__all__ = ["cycle_estimate"]


def cycle_estimate(top, spikes=None) -> dict:
    """Cycles per sample of :class:`~onespike.hdl.top.Accelerator` ``top``. ``spikes[n]`` is
    the number of spikes on the stream into layer ``n`` (``spikes[0]`` = input spikes);
    ``None`` assumes every neuron spikes (the most work a sample can bring)."""
    net = top.net
    sizes = [int(np.prod(net.encoder.shape))] + [int(np.prod(l.out_shape))
                                                  for l in net.layers]
    spikes = list(sizes[:-1] if spikes is None else spikes)
    levels = [net.in_levels(n) for n in range(len(net.layers))]
    stages = {"encoder_load": sizes[0] + 1,
              "encoder_send": 2 * levels[0] + spikes[0]}
    producers = [stages["encoder_send"]]
    consumers = []
    for n, core in enumerate(top.cores):
        if isinstance(core, MaxPoolCore):
            cost = core.span ** 2 * spikes[n] + spikes[n + 1] + levels[n] \
                + core.fired_memory_bits
            stages[f"layer{n}_maxpool"] = cost
            consumers.append(cost)
            producers.append(cost)
            continue
        stages[f"layer{n}_integrate"] = core.fan_out * spikes[n] + core.words * levels[n] + 1
        consumers.append(stages[f"layer{n}_integrate"])
        if n < len(top.cores) - 1:
            layer = net.layers[n]
            stages[f"layer{n}_fire"] = layer.levels * (core.words + 1) + spikes[n + 1] + 1
            producers.append(stages[f"layer{n}_fire"])
    stages["readout"] = sizes[-1] + top.cores[-1].groups + 1
    latency = stages["encoder_load"] + sum(max(p, c) for p, c in zip(producers, consumers)) \
        + stages["readout"] + 1
    return {"stages": stages, "steady": max(stages.values()), "latency": latency}
