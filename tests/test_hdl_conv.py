"""Convolution and max-pooling cores in the Amaranth simulator, every layer against golden."""

import numpy as np
import pytest

from helpers import CONV_NETS, conv_net_and_rng

from onespike.errors import OnespikeError
from onespike.hdl.conv import ConvCore
from onespike.hdl.maxpool import MaxPoolCore
from onespike.sim.hardware import run
from onespike.hdl.top import Accelerator
from onespike.ir import Conv, MaxPool
from onespike.sim import closed_form, first_mismatch, random_inputs, random_network


def channel_lanes(net):
    channels = max(l.weight.shape[0] for l in net.layers if not isinstance(l, MaxPool))
    divisors = [p for p in range(2, channels) if channels % p]   # not dividing: odd groups
    return sorted({1, divisors[0] if divisors else 1, channels})


def test_the_random_networks_cover_the_geometry():
    convs = [l for net in CONV_NETS for l in net.layers if isinstance(l, Conv)]
    pools = [l for net in CONV_NETS for l in net.layers if isinstance(l, MaxPool)]
    def axes(layers, name):
        return {v for layer in layers for v in getattr(layer, name)}
    assert axes(convs, "stride") == {1, 2} and axes(convs, "padding") >= {0, 1, 2}
    assert axes(convs, "kernel") >= {1, 3, 5} and any(l.pooling for l in convs)
    assert any(l.kernel[0] != l.kernel[1] for l in convs)                  # rectangular
    assert any(l.in_shape[1] == 1 and l.kernel == (1, 5) for l in convs)   # 1-D
    assert any(s < k for l in pools for s, k in zip(l.stride, l.kernel))
    assert any(any(l.padding) for l in pools)
    assert any(l.kernel[0] != l.kernel[1] for l in pools)


@pytest.mark.parametrize("number", range(len(CONV_NETS)))
def test_random_conv_networks_spike_for_spike(number):
    net, rng = conv_net_and_rng(number)
    a0 = random_inputs(rng, net, 2)
    golden = closed_form(net, a0)
    for i, lanes in enumerate(channel_lanes(net)):      # both forms of the lane multiplies
        hw = run(Accelerator(net, lanes=lanes, use_dsp=(number + i) % 2 == 0), a0, idle=0.3,
                 backpressure=0.4, seed=number, max_cycles=400_000)
        assert first_mismatch(net, golden, hw.trace) is None, f"lanes {lanes}"


def test_trained_digits_cnn(digits_cnn_net):
    net, data = digits_cnn_net
    kinds = [layer.kind for layer in net.layers]
    assert kinds == ["conv", "maxpool", "conv", "dense"] and net.layers[0].bias.ndim == 3
    assert net.layers[3].pool == (2, 2)
    a0 = net.encoder.encode(data.x_test[:3])
    golden = closed_form(net, a0)
    hw = run(Accelerator(net, lanes=5), a0, idle=0.1, backpressure=0.3)
    assert first_mismatch(net, golden, hw.trace) is None
    np.testing.assert_array_equal(hw.trace.classes, golden.classes)


def test_reset_in_the_middle_of_a_conv_inference():
    net, rng = conv_net_and_rng(0)
    junk, a0 = random_inputs(rng, net, 2), random_inputs(rng, net, 2)
    for cycles in (30, 300):
        hw = run(Accelerator(net, lanes=1), a0, interrupt=(junk, cycles),
                 max_cycles=400_000)
        assert first_mismatch(net, closed_form(net, a0), hw.trace) is None, cycles


def test_conv_readout_and_wrong_layers_are_refused():
    conv = next(l for net in CONV_NETS for l in net.layers if isinstance(l, Conv))
    readout = Conv(in_shape=conv.in_shape, weight=conv.weight, bias=conv.bias[:, ...],
                   ramp=None, act_bits=None, scale=conv.scale, stride=conv.stride,
                   padding=conv.padding, pool=conv.pool)
    with pytest.raises(ValueError, match="cannot be the readout"):
        ConvCore(readout, in_levels=1, widths=None, lanes=1)
    with pytest.raises(TypeError, match="MaxPoolCore needs a MaxPool layer"):
        MaxPoolCore(conv, levels=1)
    with pytest.raises(TypeError, match="ConvCore needs a Conv layer"):
        ConvCore(MaxPool(in_shape=(1, 4, 4), kernel=2, stride=2), in_levels=1, widths=None,
                 lanes=1)


def test_rtl_with_one_wrong_conv_weight_is_caught():
    """A planted fault: the hardware gets one kernel weight wrong (the first one that
    changes some spike for these inputs)."""
    import dataclasses

    net, rng = conv_net_and_rng(9)                  # a 1-D convolution, kernel (1, 5)
    index = next(i for i, l in enumerate(net.layers) if isinstance(l, Conv))
    a0 = random_inputs(rng, net, 2)
    golden = closed_form(net, a0)
    original = np.array(net.layers[index].weight)
    for position in np.ndindex(original.shape):
        weight = original.copy()
        weight[position] = -original[position] if original[position] else \
            int(np.abs(original).max())
        layers = list(net.layers)
        layers[index] = dataclasses.replace(layers[index], weight=weight)
        faulty = dataclasses.replace(net, layers=tuple(layers))
        if first_mismatch(net, golden, closed_form(faulty, a0)) is not None:
            break
    else:
        pytest.fail("no single weight changes a spike")
    hw = run(Accelerator(faulty, lanes=2), a0, max_cycles=400_000)
    mismatch = first_mismatch(net, golden, hw.trace)
    assert mismatch is not None and mismatch.expected != mismatch.actual
