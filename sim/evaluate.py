"""Golden-model runs over a data set: accuracy, spikes and operations per inference.

What ``onespike simulate`` and ``onespike demo`` print, as a library function.
"""

from __future__ import annotations

import numpy as np

from onespike.errors import OnespikeError
from onespike.ir import MaxPool, Network
from onespike.sim.golden import closed_form, event_sim

__all__ = ["MODES", "evaluate"]

MODES = ("event", "closed")


def evaluate(net: Network, x, labels=None, *, mode="event", batch=256, progress=True):
    """Run the golden model on float inputs ``x`` (encoded by ``net.encoder``) in batches;
    returns ``(summary dict, predicted classes)``. ``mode`` is ``event`` (every time step of
    every neuron) or ``closed`` (the integer network: the same results, faster)."""
    from tqdm import tqdm

    if mode not in MODES:
        raise OnespikeError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if batch < 1:
        raise OnespikeError(f"batch must be a positive integer, not {batch}")
    if labels is not None and len(labels) != len(x):
        raise OnespikeError(f"{len(labels)} labels for {len(x)} input samples")
    run = event_sim if mode == "event" else closed_form
    a0 = net.encoder.encode(x)
    classes, spikes, synops, in_spikes = [], 0, 0, 0
    for start in tqdm(range(0, len(a0), batch), desc=f"simulating ({mode})", unit="batch",
                      disable=not progress, leave=False):
        trace = run(net, a0[start:start + batch])
        classes.append(trace.classes)
        spikes += int(trace.spikes.sum())
        synops += int(trace.synaptic_ops.sum())
        in_spikes += int(trace.input_spikes.sum())
    classes = np.concatenate(classes) if classes else np.zeros(0, np.int64)
    neurons = sum(int(np.prod(l.out_shape)) for l in net.layers[:-1]
                  if not isinstance(l, MaxPool))
    n = max(len(x), 1)
    result = {"samples": int(len(x)), "mode": mode,
              "accuracy": None if labels is None else float(np.mean(classes == labels)),
              "spikes_per_neuron": spikes / n / max(neurons, 1),
              "spikes_per_inference": spikes / n,
              "input_spikes_per_inference": in_spikes / n,
              "synaptic_ops_per_inference": synops / n,
              "latency_steps": net.latency_steps}
    return result, classes
