"""The dense core alone in the Amaranth simulator: the golden spike stream into its layer in,
the golden stream into the next layer (or the golden logits, for the readout) out."""

import numpy as np
import pytest

from onespike.hdl.streams import discard
from onespike.ir import Dense

from helpers import FLOWS, check_layer, flipped_weight, lane_counts, layer_core, networks_with


def hidden(layer):
    return isinstance(layer, Dense) and not layer.is_readout


LAYERS = (networks_with(2, conv=False, where=hidden)
          + networks_with(1, conv=True, where=lambda layer: hidden(layer) and layer.pooling)
          + networks_with(2, conv=True, where=lambda layer: isinstance(layer, Dense)
                          and layer.is_readout))
CASES = [(number, lanes) for number, (net, n, _) in enumerate(LAYERS)
         for lanes in lane_counts(net.layers[n])]


def test_the_layers_cover_the_cases():
    layers = [net.layers[n] for net, n, _ in LAYERS]
    assert {layer.is_readout for layer in layers} == {False, True}
    assert {len(layer.in_shape) for layer in layers} == {1, 3}
    assert any(layer.pooling for layer in layers)
    assert any(lanes > 1 and layers[number].weight.shape[0] % lanes
               for number, lanes in CASES)


@pytest.mark.parametrize("idle, backpressure", FLOWS)
@pytest.mark.parametrize("number, lanes", CASES)
def test_dense_core_against_golden(number, lanes, idle, backpressure):
    net, n, a0 = LAYERS[number]
    mismatch = check_layer(layer_core(net, n, lanes=lanes), net, n, a0, idle=idle,
                           backpressure=backpressure, seed=number)
    assert mismatch is None, mismatch


@pytest.mark.parametrize("faulty", [False, True], ids=["as built", "one weight flipped"])
@pytest.mark.parametrize("number", [0, len(LAYERS) - 1], ids=["hidden", "readout"])
def test_a_planted_fault_is_caught(number, faulty):
    net, n, a0 = LAYERS[number]
    lanes = max(lane_counts(net.layers[n]))
    core = layer_core(net, n, lanes=lanes, layer=flipped_weight(net, n, a0) if faulty else None)
    right = discard(layer_core(net, n, lanes=lanes)).weight_contents
    assert np.count_nonzero(core.weight_contents != right) == int(faulty)
    mismatch = check_layer(core, net, n, a0, idle=0.3, backpressure=0.5)
    assert (mismatch is not None) == faulty, mismatch
