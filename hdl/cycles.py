"""Cycle model of the accelerator: what each stage costs per sample, from the design.

Every stage handles one sample at a time and hands it on (two banks), so in steady state a
sample leaves every ``max(stage)`` cycles; a single sample's latency is the input load
plus, for each stream, the slower of its producer and consumer, plus the readout. The
counts follow the state machines in :mod:`~onespike.hdl.encoder` and
:mod:`~onespike.hdl.dense`; ``bench/hdl_cycles.py`` puts them next to measured cycles.
"""

import numpy as np

from onespike.ir import Network

__all__ = ["cycle_estimate"]


def cycle_estimate(net: Network, lanes, spikes=None) -> dict:
    """Cycles per sample for ``lanes`` per layer. ``spikes[n]`` is the number of spikes on
    the stream into layer ``n`` (``spikes[0]`` = input spikes) and, last, the spikes of the
    last hidden layer's output is ``spikes[-1]``; ``None`` assumes every neuron spikes (the
    most work a sample can bring)."""
    sizes = [int(np.prod(net.encoder.shape))] + [l.weight.shape[0] for l in net.layers]
    if spikes is None:
        spikes = sizes[:-1]
    groups = [-(-n // p) for n, p in zip(sizes[1:], lanes)]
    levels = [net.in_levels(n) for n in range(len(net.layers))]
    load = sizes[0] + 1
    send = [2 * levels[0] + spikes[0]]                        # encoder
    integrate = [g * (s + a) + 1 for g, s, a in zip(groups, spikes, levels)]
    for n, layer in enumerate(net.layers[:-1]):               # hidden firing
        send.append(layer.levels * (groups[n] + 1) + spikes[n + 1] + 1)
    readout = sizes[-1] + groups[-1] + 1
    stages = {"encoder_load": load, "encoder_send": send[0]}
    for n in range(len(net.layers)):
        stages[f"layer{n}_integrate"] = integrate[n]
        if n < len(net.layers) - 1:
            stages[f"layer{n}_fire"] = send[n + 1]
    stages["readout"] = readout
    latency = load + sum(max(p, c) for p, c in zip(send, integrate)) + readout + 1
    return {"stages": stages, "steady": max(stages.values()), "latency": latency}
