"""The convolution core alone in the Amaranth simulator: the golden spike stream into its
layer in, the golden stream into the next layer out."""

import numpy as np
import pytest
from amaranth.hdl import Mux

from onespike.hdl.conv import ConvCore
from onespike.hdl.streams import discard
from onespike.ir import Conv

from helpers import FLOWS, check_layer, flipped_weight, lane_counts, layer_core, networks_with


def conv(layer):
    return isinstance(layer, Conv) and not layer.is_readout


# the first 18 random networks' convolutions, picked for their spread of geometry
LAYERS = [networks_with(18, conv=True, where=conv, samples=2)[k] for k in (3, 6, 11, 12)]
CASES = [(number, lanes) for number, (net, n, _) in enumerate(LAYERS)
         for lanes in lane_counts(net.layers[n])]


def test_the_layers_cover_the_geometry():
    layers = [net.layers[n] for net, n, _ in LAYERS]
    def axes(name):
        return {v for layer in layers for v in getattr(layer, name)}
    assert axes("stride") == {1, 2} and axes("padding") == {0, 1, 2}
    assert {layer.pooling for layer in layers} == {False, True}
    assert {layer.bias.ndim for layer in layers} == {1, 3}
    assert len({layer.kernel for layer in layers}) >= 3
    assert any(layer.kernel[0] != layer.kernel[1] for layer in layers)     # rectangular
    assert any(layer.in_shape[1] == 1 and layer.kernel[0] == 1 and layer.kernel[1] > 1
               for layer in layers)                                        # a 1-D convolution
    assert any(layer.pool[0] != layer.pool[1] for layer in layers)
    assert any(lanes > 1 and layers[number].weight.shape[0] % lanes
               for number, lanes in CASES)


@pytest.mark.parametrize("idle, backpressure", FLOWS)
@pytest.mark.parametrize("number, lanes", CASES)
def test_conv_core_against_golden(number, lanes, idle, backpressure):
    net, n, a0 = LAYERS[number]
    mismatch = check_layer(layer_core(net, n, lanes=lanes), net, n, a0, idle=idle,
                           backpressure=backpressure, seed=number)
    assert mismatch is None, mismatch


@pytest.mark.parametrize("faulty", [False, True], ids=["as built", "one weight flipped"])
def test_a_planted_fault_is_caught(faulty):
    net, n, a0 = LAYERS[2]
    lanes = max(lane_counts(net.layers[n]))
    core = layer_core(net, n, lanes=lanes, layer=flipped_weight(net, n, a0) if faulty else None)
    right = discard(layer_core(net, n, lanes=lanes)).weight_contents
    assert np.count_nonzero(core.weight_contents != right) == int(faulty)
    mismatch = check_layer(core, net, n, a0, idle=0.3, backpressure=0.5)
    assert (mismatch is not None) == faulty, mismatch


def test_constants_follow_the_bias():
    """One constants row per group where the bias is per channel, one per state word where
    it depends on the position."""
    rows = {}
    for net, n, _ in LAYERS:
        core = discard(layer_core(net, n, lanes=2))
        rows[net.layers[n].bias.ndim] = (core.constant_rows, core.groups, core.words)
    assert rows[1][0] == rows[1][1] < rows[1][2]
    assert rows[3][0] == rows[3][2]


@pytest.mark.parametrize("sorted_firing", [False, True], ids=["sweep", "sorted"])
@pytest.mark.parametrize("faulty", [False, True], ids=["as built", "next channel's constants"])
def test_a_constant_read_for_the_wrong_channel_is_caught(faulty, sorted_firing, monkeypatch):
    """The planted fault: every word of a group reads the constants (U0, ramp) of the next
    group, at one lane the next channel's."""
    net, n, a0 = LAYERS[2]
    if faulty:
        monkeypatch.setattr(ConvCore, "_constant_row",
                            lambda self, group: Mux(group == self.groups - 1, 0, group + 1))
    core = layer_core(net, n, lanes=1, sorted_firing=sorted_firing)
    assert core.shared_constants and core.constant_rows == core.groups > 1
    mismatch = check_layer(core, net, n, a0, idle=0.3, backpressure=0.5)
    assert (mismatch is not None) == faulty, mismatch
