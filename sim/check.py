"""Comparing spike traces: the checker every regression (pytest, Amaranth, cocotb) uses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onespike.ir import NO_SPIKE

__all__ = ["Mismatch", "Comparison", "first_mismatch", "compare"]


@dataclass(frozen=True)
class Mismatch:
    """The first difference between an expected and an actual run, precisely located."""
    sample: int
    layer: str          # "input", "layer <i> (<kind>)" or "logits"
    neuron: tuple       # index within the layer's map
    expected: int
    actual: int

    def __str__(self):
        def say(value):
            if self.layer == "logits":
                return f"logit {value}"
            return "no spike" if value == NO_SPIKE else f"spike at step {value}"
        return (f"sample {self.sample}, {self.layer}, neuron {self.neuron}: expected "
                f"{say(self.expected)}, got {say(self.actual)}")


def _first(expected, actual, layer):
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape:
        raise ValueError(f"{layer}: shapes differ, {expected.shape} vs {actual.shape}")
    diff = np.argwhere(expected != actual)
    if len(diff) == 0:
        return None
    index = tuple(int(i) for i in diff[0])
    return Mismatch(index[0], layer, index[1:], int(expected[index]), int(actual[index]))


def first_mismatch(net, expected, actual):
    """First differing spike time (layer order, then sample), else differing logit, or None.

    ``expected`` and ``actual`` are :class:`~onespike.sim.golden.Trace`-like: ``times``
    (one map per layer input) and ``logits``.
    """
    names = ["input"] + [f"layer {i} ({layer.kind})" for i, layer in
                         enumerate(net.layers[:-1])]
    candidates = [_first(e, a, name) for e, a, name in zip(expected.times, actual.times, names)]
    candidates.append(_first(expected.logits, actual.logits, "logits"))
    found = [m for m in candidates if m is not None]
    return min(found, key=lambda m: m.sample) if found else None


@dataclass(frozen=True)
class Comparison:
    """Every value compared (spike times of every neuron of every layer input, logits,
    classes), how many differ, and the first difference."""
    values_compared: int
    mismatches: int
    first: Mismatch | None


def compare(net, expected, actual) -> Comparison:
    """Compare ``actual`` (a :class:`~onespike.sim.observed.HardwareTrace`) with the golden
    ``expected`` value by value; missing or extra classes count as mismatches."""
    times = [(np.asarray(e), np.asarray(a)) for e, a in zip(expected.times, actual.times)]
    compared = sum(e.size for e, _ in times) + expected.logits.size + len(expected.classes)
    wrong = sum(int((e != a).sum()) for e, a in times) \
        + int((np.asarray(expected.logits) != np.asarray(actual.logits)).sum())
    if len(actual.classes) != len(expected.classes):
        wrong += abs(len(actual.classes) - len(expected.classes))
    else:
        wrong += int((np.asarray(actual.classes) != expected.classes).sum())
    return Comparison(int(compared), int(wrong), first_mismatch(net, expected, actual))
