"""What the hardware did, in the golden model's terms: one trace type and one tap decoder.

The runners that see the accelerator's taps (the Amaranth simulator in
:mod:`onespike.sim.hardware`, the cocotb testbench in :mod:`onespike.sim.testbench`) turn the
transfers into a :class:`HardwareTrace` through :class:`TapDecoder` and compare it with the
golden model (:mod:`onespike.sim.check`: ``first_mismatch``, ``compare``). The board testbench
(:mod:`onespike.boards.testbench`) and the host runner (:mod:`onespike.boards.host`) see no
taps, only the link's UART replies; they take the expected step of a spike from
:func:`window_steps`. Like the golden model, this module needs nothing but numpy and the IR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onespike.ir import NO_SPIKE, Network

__all__ = ["HardwareTrace", "TapDecoder", "flat_index_of", "window_steps"]


@dataclass(frozen=True)
class HardwareTrace:
    """Spike times per layer input (``times[n]``, shape ``(samples, *in_shape)``, or
    ``(samples, steps, *in_shape)`` for a sequence network's per-step streams; golden time
    base, :data:`~onespike.ir.NO_SPIKE` where nothing fired), ``logits`` and ``classes``: the
    fields :func:`~onespike.sim.check.first_mismatch` compares."""
    times: tuple
    logits: np.ndarray
    classes: np.ndarray
    activations: tuple = None     # dense coding: the activation maps the taps carried


def flat_index_of(index, shape) -> int:
    """The C-order number of a decoded neuron index: an int for a vector, or a mapping or
    object with ``x``, ``y``, ``c`` for an image."""
    if len(shape) == 1:
        return int(index)
    _, h, w = shape
    get = index.__getitem__ if isinstance(index, dict) else lambda k: getattr(index, k)
    return int(get("c")) * h * w + int(get("y")) * w + int(get("x"))


def window_steps(net: Network, times: np.ndarray, layer: int) -> np.ndarray:
    """Spike times of the map feeding ``net.layers[layer]`` (``layer = len(net.layers)`` or
    -1: the readout's input) as steps within that map's window; ``NO_SPIKE`` stays."""
    start = net.window_starts()[layer]
    times = np.asarray(times)
    return np.where(times == NO_SPIKE, NO_SPIKE, times - start)


@dataclass(frozen=True)
class _Stream:
    shape: tuple        # the neuron map carried
    levels: int         # A: end-of-step markers per window
    start: int          # global time of step 0
    steps: int = None   # windows per sample: a sequence's steps, or None (one window)

    @property
    def windows(self):
        return self.steps or 1


class TapDecoder:
    """Collects decoded tap transfers into a :class:`HardwareTrace`.

    ``streams`` are ``(shape, levels, window start[, steps])`` of the spike stream into each
    layer (``steps``: a sequence network's per-step stream carries that many windows per
    sample, one per sequence step). Feed it :meth:`spike` for every transfer on ``tap_<n>``
    (a spike, or an end-of-step marker with ``end`` set; the ``levels``-th marker closes a
    window) — or, for the dense coding,
    :meth:`activation` (``{index, value}``, one ``end`` per sample; a neuron not sent is 0)
    — and :meth:`logit` for every transfer on ``tap_logits``; transfers beyond ``samples``
    land in :attr:`extra`. :attr:`transfers`, :attr:`zeros` and :attr:`duplicates` count
    per stream what was sent (markers not counted).
    """

    def __init__(self, streams, classes: int, samples: int):
        self.streams = [_Stream(tuple(s), int(a), int(t), *rest) for s, a, t, *rest in streams]
        self.samples, self.classes = samples, classes
        self.extra = []
        self.forget()

    @classmethod
    def for_network(cls, net: Network, samples: int) -> "TapDecoder":
        shapes = [net.encoder.shape] + [layer.out_shape for layer in net.layers[:-1]]
        levels = [net.in_levels(n) for n in range(len(net.layers))]
        steps = [net.steps if net.per_step(n) else None for n in range(len(net.layers))]
        return cls(zip(shapes, levels, net.window_starts(), steps), net.num_classes, samples)

    @classmethod
    def for_manifest(cls, manifest: dict, samples: int) -> "TapDecoder":
        """From ``manifest.json`` alone (a testbench that never sees the IR)."""
        streams = [(layer["in_shape"], end - start, start, layer.get("input_steps"))
                   for layer in manifest["layers"]
                   for start, end in [layer["input_window"]]]
        return cls(streams, manifest["classes"], samples)

    def forget(self):
        """Drop everything seen (after a reset: those transfers never counted)."""
        # one row per window: a sequence's steps follow each other
        self.times = [np.full((self.samples * s.windows, int(np.prod(s.shape))), NO_SPIKE,
                              np.int64) for s in self.streams]
        self.maps = [np.zeros_like(t) for t in self.times]
        self.transfers, self.zeros = [0] * len(self.streams), [0] * len(self.streams)
        self.duplicates = 0
        self.dense = False
        self.logits = np.zeros((self.samples, self.classes), dtype=np.int64)
        self.sample_of = [0] * len(self.streams)
        self.logit_sample = 0
        self.extra.clear()

    def _windows(self, n):
        return self.samples * self.streams[n].windows

    def spike(self, n: int, index, step: int, end: bool):
        s, stream = self.sample_of[n], self.streams[n]
        if s >= self._windows(n):
            self.extra.append(f"tap_{n}: index {index}, step {step}, end {int(end)}")
        elif end:
            if step == stream.levels - 1:
                self.sample_of[n] += 1
        else:
            self.times[n][s, flat_index_of(index, stream.shape)] = stream.start + step

    def spikes(self, n: int, flat, step, end):
        """:meth:`spike` for a block of transfers on ``tap_<n>`` in arrival order (numpy
        arrays: C-order neuron number, step, end flag); same result as one call each."""
        stream, first = self.streams[n], self.sample_of[n]
        closes = end & (step == stream.levels - 1)
        sample = first + np.cumsum(closes) - closes       # markers closed before each one
        windows = self._windows(n)
        for i in np.flatnonzero(sample >= windows):
            self.extra.append(f"tap_{n}: index {int(flat[i])}, step {int(step[i])}, "
                              f"end {int(end[i])}")
        keep = ~end & (sample < windows)
        # the last spike of a neuron in a sample wins, as with one call per transfer
        key = sample[keep] * self.times[n].shape[1] + flat[keep]
        _, last = np.unique(key[::-1], return_index=True)
        rows = np.flatnonzero(keep)[::-1][last]
        self.times[n][sample[rows], flat[rows]] = stream.start + step[rows]
        self.sample_of[n] = min(windows, first + int(closes.sum()))

    def logit_block(self, index, value, last):
        """:meth:`logit` for a block of ``tap_logits`` transfers in arrival order."""
        sample = self.logit_sample + np.cumsum(last) - last
        for i in np.flatnonzero(sample >= self.samples):
            self.extra.append(f"tap_logits: index {int(index[i])}, value {int(value[i])}")
        ok = sample < self.samples
        self.logits[sample[ok], index[ok]] = value[ok]
        self.logit_sample = min(self.samples, self.logit_sample + int(last.sum()))

    def transfer(self, n: int, fields: dict):
        """A decoded ``tap_<n>`` payload of either coding: ``{index, step, end}`` (TTFS) or
        ``{index, value, end}`` (dense)."""
        if "step" in fields:
            self.spike(n, fields["index"], fields["step"], fields["end"])
        else:
            self.activation(n, fields["index"], fields["value"], fields["end"])

    def activation(self, n: int, index, value: int, end: bool):
        s, stream = self.sample_of[n], self.streams[n]
        self.dense = True
        if s >= self._windows(n):
            self.extra.append(f"tap_{n}: index {index}, value {value}, end {int(end)}")
        elif end:
            self.sample_of[n] += 1
        else:
            j = flat_index_of(index, stream.shape)
            self.duplicates += int(self.times[n][s, j] != NO_SPIKE or self.maps[n][s, j] != 0)
            self.transfers[n] += 1
            self.zeros[n] += int(value == 0)
            self.maps[n][s, j] = value
            if value > 0:
                self.times[n][s, j] = stream.start + stream.levels - value

    def logit(self, index: int, value: int, last: bool):
        if self.logit_sample >= self.samples:
            self.extra.append(f"tap_logits: index {index}, value {value}")
            return
        self.logits[self.logit_sample, index] = value
        self.logit_sample += int(bool(last))

    def trace(self, classes) -> HardwareTrace:
        """The trace so far, with the ``classes`` that came out of ``o``."""
        def per_sample(rows, s):
            return rows.reshape((self.samples,) + ((s.steps,) if s.steps else ()) + s.shape)
        times = tuple(per_sample(t, s) for t, s in zip(self.times, self.streams))
        maps = tuple(per_sample(m, s) for m, s in zip(self.maps, self.streams)) \
            if self.dense else None
        return HardwareTrace(times=times, logits=self.logits.copy(),
                             classes=np.asarray(classes, dtype=np.int64), activations=maps)
