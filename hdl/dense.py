"""Dense layer core: ``N`` neurons on ``P`` lanes, one weight row per input neuron."""

import numpy as np

from onespike.hdl.arith import const_multiply
from onespike.hdl.core import NeuronCore, NeuronSizes
from onespike.hdl.streams import flat_index
from onespike.ir import Dense

__all__ = ["DenseCore", "DenseSizes", "unpooled_weights"]


def unpooled_weights(layer: Dense) -> np.ndarray:
    """``(inputs, outputs)`` weights with one row per *incoming* neuron (C-order index of
    ``layer.in_shape``): flattening is the identity, and sum pooling maps each incoming
    neuron to the row of its pooled input (rows cut off by pooling are zero)."""
    weight = layer.weight.T
    if not layer.pooling:
        return weight
    c, h, w = layer.in_shape
    kh, kw = layer.pool
    _, hp, wp = layer.pooled_shape
    rows = np.zeros((c, h, w, weight.shape[1]), dtype=np.int64)
    pooled = weight.reshape(c, hp, wp, -1)
    rows[:, :hp * kh, :wp * kw] = np.repeat(np.repeat(pooled, kh, axis=1), kw, axis=2)
    return rows.reshape(c * h * w, -1)


class DenseSizes(NeuronSizes):
    """:class:`DenseCore`'s sizes (:class:`~onespike.hdl.core.NeuronSizes`)."""

    def __init__(self, layer: Dense, **options):
        if not isinstance(layer, Dense):
            raise TypeError(f"DenseCore needs a Dense layer, not {type(layer).__name__}")
        super().__init__(layer, **options)

    def weight_words(self):
        rows = unpooled_weights(self._layer)
        padded = np.zeros((len(rows), self.groups * self.lanes), dtype=np.int64)
        padded[:, :self._channels] = rows
        return padded.reshape(-1, self.lanes)

    def synapse_sizes(self):
        return [self.groups]

    def synapse_bounds(self, index):
        return [(0, self.groups - 1)], 1

    def synapse(self, index, counters):
        group, = counters
        return group, const_multiply(flat_index(index, self._layer.in_shape), self.groups) + group

    def synapse_counts(self):
        return np.full(self.inputs, self.groups)

    def neuron_index(self, word_counters, lane):
        group, = word_counters
        return const_multiply(group, self.lanes) + lane

    def neuron_constants(self):
        ramp = np.zeros(self._channels, dtype=np.int64) if self._layer.is_readout \
            else self._layer.ramp
        return self._channel_lanes(self._layer.bias), self._channel_lanes(ramp)


class DenseCore(NeuronCore, DenseSizes):
    """One fully connected layer (hidden or readout), :class:`NeuronCore` dynamics.

    The weight memory holds one row of ``groups`` words per incoming neuron (flattening and
    sum pooling are folded into the rows), so an input spike costs ``groups`` cycles; the
    state is ``groups`` words.
    """
