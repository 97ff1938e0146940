"""Convolution core: event-driven Conv2d on ``P`` output-channel lanes."""

import numpy as np
from amaranth.hdl import Cat, Const, Mux

from onespike.hdl.arith import const_divide, const_multiply
from onespike.hdl.core import NeuronCore, NeuronSizes
from onespike.hdl.dense import DenseSizes
from onespike.hdl.streams import neuron_layout
from onespike.ir import Conv

__all__ = ["ConvCore", "ConvSizes", "core_sizes"]


class ConvSizes(NeuronSizes):
    """:class:`ConvCore`'s sizes (:class:`~onespike.hdl.core.NeuronSizes`)."""

    def __init__(self, layer: Conv, **options):
        if not isinstance(layer, Conv):
            raise TypeError(f"ConvCore needs a Conv layer, not {type(layer).__name__}")
        if layer.is_readout:
            raise ValueError("a convolution cannot be the readout; end the network with a "
                             "Linear layer")
        super().__init__(layer, **options)

    @property
    def shared_constants(self):
        """A bias per channel on a map of several positions: one constants row per group
        of lanes (a position-dependent bias needs one per state word)."""
        return self._layer.bias.ndim == 1 and self.positions > 1

    @property
    def positions(self):
        _, h, w = self._layer.out_shape
        return h * w

    def position_sizes(self):
        return list(self._layer.out_shape[1:])

    def weight_words(self):
        o, c, kh, kw = self._layer.weight.shape
        padded = np.zeros((c, kh, kw, self.groups * self.lanes), dtype=np.int64)
        padded[..., :o] = self._layer.weight.transpose(1, 2, 3, 0)
        return padded.reshape(-1, self.lanes)

    def synapse_sizes(self):
        _, ho, wo = self._layer.out_shape
        return [ho, wo, self.groups]

    def _axis(self, coord, axis, out_size, pooled_size):
        """``(first, last, any)``: the output rows (``axis`` 0) or columns (1) input row
        ``coord`` reaches, ``o·stride − padding + tap = coord // pool`` for a tap in
        ``0..K−1`` of that axis."""
        layer = self._layer
        k, s, p, pool = (v[axis] for v in (layer.kernel, layer.stride, layer.padding,
                                           layer.pool))
        exists = Const(1)
        if pool > 1:
            coord = const_divide(coord, pool)
            exists &= coord < pooled_size           # cut off by the pooling
        u = coord + p
        last = const_divide(u, s) if s > 1 else u
        last = Mux(last > out_size - 1, out_size - 1, last)
        first = const_divide(u + (s - k), s) if s > 1 else u + (1 - k)
        if k > 1:                                   # rows above the map's top: none
            first = Mux(u >= k - 1, first, 0)
        return first, last, exists & (first <= last)

    def synapse_bounds(self, index):
        _, hp, wp = self._layer.pooled_shape
        _, ho, wo = self._layer.out_shape
        y0, y1, y_any = self._axis(index.y, 0, ho, hp)
        x0, x1, x_any = self._axis(index.x, 1, wo, wp)
        return [(y0, y1), (x0, x1), (0, self.groups - 1)], y_any & x_any

    def synapse(self, index, counters):
        layer = self._layer
        oy, ox, group = counters
        kh, kw = layer.kernel
        _, ho, wo = layer.out_shape
        taps = []
        for coord, o, k, s, p, pool in zip((index.y, index.x), (oy, ox), layer.kernel,
                                           layer.stride, layer.padding, layer.pool):
            if pool > 1:
                coord = const_divide(coord, pool)
            taps.append((coord + p - const_multiply(o, s))[:max(k - 1, 1).bit_length()])
        ky, kx = taps
        word = const_multiply(const_multiply(group, ho) + oy, wo) + ox
        weight_word = const_multiply(
            const_multiply(const_multiply(index.c, kh) + ky, kw) + kx, self.groups) + group
        return word, weight_word

    def synapse_counts(self):
        layer = self._layer
        c, h, w = layer.in_shape
        _, hp, wp = layer.pooled_shape
        _, ho, wo = layer.out_shape

        def reach(axis, size, pooled, out):
            k, s, p, pool = (v[axis] for v in (layer.kernel, layer.stride, layer.padding,
                                               layer.pool))
            u = np.arange(size) // pool + p
            last = np.minimum(u // s, out - 1)
            first = np.where(u >= k - 1, -(-(u - k + 1) // s), 0)
            n = np.maximum(last - first + 1, 0)
            return np.where(np.arange(size) // pool < pooled, n, 0)
        per = np.outer(reach(0, h, hp, ho), reach(1, w, wp, wo)) * self.groups
        return np.broadcast_to(per, (c, h, w)).reshape(-1)

    def neuron_index(self, word_counters, lane):
        group, oy, ox = word_counters
        layout = neuron_layout(self._layer.out_shape)
        width = {name: field.width for name, field in layout}
        def fit(value, bits):
            return value[:bits] if len(value) >= bits else Cat(value, Const(0, bits - len(value)))
        return Cat(fit(ox, width["x"]), fit(oy, width["y"]),
                   fit(const_multiply(group, self.lanes) + lane, width["c"]))

    def neuron_constants(self):
        layer = self._layer
        o, ho, wo = layer.out_shape
        bias = np.broadcast_to(layer.bias.reshape(o, *(layer.bias.shape[1:] or (1, 1))),
                               (o, ho, wo))
        ramp = np.broadcast_to(layer.ramp.reshape(o, 1, 1), (o, ho, wo))

        def words(per_neuron):
            padded = np.zeros((self.groups * self.lanes, ho, wo), dtype=np.int64)
            padded[:o] = per_neuron
            return padded.reshape(self.groups, self.lanes, ho * wo).transpose(0, 2, 1) \
                .reshape(-1, self.lanes)
        return words(bias), words(ramp)


class ConvCore(NeuronCore, ConvSizes):
    """One convolution layer (stride, zero padding, optional sum pooling of its input).

    An input spike ``(c, y, x)`` steps through exactly the output positions ``(oy, ox)`` it
    reaches (``oy·stride_y − padding_y + ky = y`` for a tap ``ky`` in ``0..kh−1``, likewise
    for ``x``; after sum pooling, ``y // pool_y``) and the ``groups`` channel groups, and
    adds the weight word ``w[group lanes, c, ky, kx]`` into the state word of
    ``(group, oy, ox)``: one cycle per reached position and group (at most
    ``ceil(kh/sh)·ceil(kw/sw)·groups``), none for taps that fall into padding, between
    strides or off the map. Every geometry value has its own height and width, so a 1-D
    convolution is the height-1 case.
    State words are ``(group, oy, ox)``; their constants are stored per group where the
    bias is per channel, per state word where it depends on the position (a normalized
    first layer's input offset meeting zero padding).
    """


def core_sizes(layer):
    """The sizes of a weighted layer's neuron core: :class:`ConvSizes` for a ``Conv``, else
    :class:`~onespike.hdl.dense.DenseSizes`."""
    return ConvSizes if isinstance(layer, Conv) else DenseSizes
