"""The max-pooling core alone in the Amaranth simulator: the golden spike stream into its
layer in, the golden stream into the next layer out."""

import numpy as np
import pytest

from onespike.hdl.maxpool import MaxPoolCore
from onespike.hdl.streams import discard
from onespike.ir import MaxPool
from onespike.sim import closed_form

from helpers import (FLOWS, check_layer, layer_core, markers, networks_with, run_stream,
                     spike_steps, spike_transfers)

ZERO = {"x": 0, "y": 0, "c": 0}


def maxpool(layer):
    return isinstance(layer, MaxPool)


# the first 12 random networks' max-pooling layers, picked for their spread of geometry
LAYERS = [networks_with(12, conv=True, where=maxpool)[k] for k in (0, 4, 5, 6, 10)]


class ShortSightedMaxPool(MaxPoolCore):
    """Planted fault: an input spike checks one pooled row and column too few (the span
    rounded down instead of up)."""

    @property
    def spans(self):
        return tuple(max(span - 1, 1) for span in super().spans)


def test_the_layers_cover_the_geometry():
    layers = [net.layers[n] for net, n, _ in LAYERS]
    def axes(name):
        return {v for layer in layers for v in getattr(layer, name)}
    assert axes("stride") == {1, 2, 3} and axes("kernel") == {1, 2, 3}
    assert axes("padding") == {0, 1}
    assert any(s < k for layer in layers for s, k in zip(layer.stride, layer.kernel))
    assert any(layer.stride == layer.kernel for layer in layers)
    assert any(layer.kernel[0] != layer.kernel[1] for layer in layers)     # rectangular
    assert any(layer.in_shape[1] == 1 for layer in layers)                 # a 1-D signal
    assert any(layer.in_shape[0] > 1 for layer in layers)


@pytest.mark.parametrize("idle, backpressure", FLOWS)
@pytest.mark.parametrize("number", range(len(LAYERS)))
def test_maxpool_core_against_golden(number, idle, backpressure):
    net, n, a0 = LAYERS[number]
    mismatch = check_layer(layer_core(net, n), net, n, a0, idle=idle,
                           backpressure=backpressure, seed=number)
    assert mismatch is None, mismatch


@pytest.mark.parametrize("core", [MaxPoolCore, ShortSightedMaxPool])
def test_a_planted_fault_is_caught(core):
    net, n, a0 = LAYERS[1]
    assert discard(MaxPoolCore(net.layers[n], levels=net.in_levels(n))).spans == (2, 2)
    mismatch = check_layer(core(net.layers[n], levels=net.in_levels(n)), net, n, a0,
                           idle=0.3, backpressure=0.5)
    assert (mismatch is not None) == (core is ShortSightedMaxPool), mismatch


def test_end_of_step_markers_carry_index_0():
    """An incoming marker names a random neuron (its index is unused); the outgoing one
    names none: index 0."""
    net, n, a0 = LAYERS[2]
    layer, levels = net.layers[n], net.in_levels(n)
    steps = spike_steps(closed_form(net, a0).times[n], net.window_starts()[n], levels)
    inputs = spike_transfers(steps, layer.in_shape, levels, np.random.default_rng(0))
    assert any(t["end"] and t["index"] != ZERO for t in inputs)
    outputs = run_stream(layer_core(net, n), inputs, until=markers(len(steps)))
    ends = [t["index"] for t in outputs if t["end"]]
    assert len(ends) == len(steps) and all(index == ZERO for index in ends), ends
