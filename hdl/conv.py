"""Convolution core: event-driven Conv2d on ``P`` output-channel lanes."""

import numpy as np
from amaranth.hdl import Cat, Const

from onespike.hdl.core import NeuronCore
from onespike.hdl.streams import neuron_layout, refuse
from onespike.ir import Conv, LayerWidths

__all__ = ["ConvCore"]


def _div(value, k):
    """``value // k`` for a positive constant ``k`` (a shift when ``k`` is a power of 2)."""
    if k & (k - 1) == 0:
        return value >> (k.bit_length() - 1)
    return value // k


class ConvCore(NeuronCore):
    """One convolution layer (stride, zero padding, optional sum pooling of its input).

    An input spike ``(c, y, x)`` steps through the ``K·K`` kernel taps and the ``groups``
    channel groups: tap ``(ky, kx)`` reaches the output position ``(oy, ox)`` with
    ``oy·stride − padding + ky = y`` (after sum pooling, ``y // pool``), if there is one,
    and adds the weight word ``w[group lanes, c, ky, kx]`` into the current word of
    ``(group, oy, ox)``: ``K·K·groups`` cycles per spike, padding contributes nothing.
    State words are ``(group, oy, ox)``; each has its own biases (a position-dependent
    bias of a normalized first layer is honoured) and its channels' ramps.
    """

    def __init__(self, layer: Conv, *, in_levels: int, widths: LayerWidths, lanes: int):
        if not isinstance(layer, Conv):
            refuse(self, TypeError(f"ConvCore needs a Conv layer, not {type(layer).__name__}"))
        if layer.is_readout:
            refuse(self, ValueError("a convolution cannot be the readout; end the network "
                                    "with a Linear layer"))
        super().__init__(layer, in_levels=in_levels, widths=widths, lanes=lanes)

    @property
    def positions(self):
        _, h, w = self._layer.out_shape
        return h * w

    def position_sizes(self):
        return list(self._layer.out_shape[1:])

    def weight_words(self):
        o, c, k, _ = self._layer.weight.shape
        padded = np.zeros((c, k, k, self.groups * self.lanes), dtype=np.int64)
        padded[..., :o] = self._layer.weight.transpose(1, 2, 3, 0)
        return padded.reshape(-1, self.lanes)

    def synapse_counters(self):
        k = self._layer.kernel
        return [k, k, self.groups]

    def synapse(self, index, counters):
        layer = self._layer
        ky, kx, group = counters
        k, s, p = layer.kernel, layer.stride, layer.padding
        _, hp, wp = layer.pooled_shape
        _, ho, wo = layer.out_shape
        valid = Const(1)
        taps = []
        for coord, tap, size, out_size in ((index.y, ky, hp, ho), (index.x, kx, wp, wo)):
            if layer.pool > 1:
                coord = _div(coord, layer.pool)
                valid &= coord < size             # cut off by the pooling
            shifted = coord + p
            if k > 1 and not isinstance(tap, int):
                valid &= shifted >= tap           # not in the top/left padding
            t = (shifted - tap)[:shifted.shape().width]
            if s > 1:
                valid &= (t % s) == 0             # the tap lands on an output position
                t = _div(t, s)
            valid &= t < out_size                 # not beyond the bottom/right edge
            taps.append(t)
        oy, ox = taps
        word = (group * ho + oy) * wo + ox
        weight_word = ((index.c * k + ky) * k + kx) * self.groups + group
        return word, weight_word, valid

    def neuron_index(self, word_counters, lane):
        group, oy, ox = word_counters
        layout = neuron_layout(self._layer.out_shape)
        width = {name: field.width for name, field in layout}
        def fit(value, bits):
            return value[:bits] if len(value) >= bits else Cat(value, Const(0, bits - len(value)))
        return Cat(fit(ox, width["x"]), fit(oy, width["y"]),
                   fit(group * self.lanes + lane, width["c"]))

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
