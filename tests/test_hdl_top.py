"""Amaranth simulation of the generated accelerator against the golden model, every layer."""

import numpy as np
import pytest

from onespike.errors import OnespikeError
from onespike.sim.hardware import run
from onespike.hdl.top import Accelerator
from onespike.sim import closed_form, first_mismatch, random_inputs, random_network


def dense_net(seed, **kw):
    rng = np.random.default_rng(seed)
    return random_network(rng, conv=False, **kw), rng


def lane_choices(net):
    largest = max(layer.weight.shape[0] for layer in net.layers)
    divisors = [p for p in range(2, largest) if largest % p == 0]
    return sorted({1, divisors[0] if divisors else 1, largest})


@pytest.mark.parametrize("seed", range(10))
def test_random_dense_networks_spike_for_spike(seed):
    net, rng = dense_net(seed, act_bits=int(np.random.default_rng(seed).integers(1, 4)))
    a0 = random_inputs(rng, net, 3)
    golden = closed_form(net, a0)
    for i, lanes in enumerate(lane_choices(net)):       # both forms of the lane multiplies
        hw = run(Accelerator(net, lanes=lanes, use_dsp=(seed + i) % 2 == 0), a0, idle=0.3,
                 backpressure=0.4, seed=seed, max_cycles=200_000)
        assert first_mismatch(net, golden, hw.trace) is None, f"lanes {lanes}"
        np.testing.assert_array_equal(hw.trace.classes, golden.classes)


def test_eight_bit_activations():
    net, rng = dense_net(11, act_bits=8, max_width=5, max_layers=2)
    a0 = random_inputs(rng, net, 2)
    hw = run(Accelerator(net, lanes=2 if net.layers[0].weight.shape[0] >= 2 else 1), a0,
             idle=0.2, backpressure=0.2, max_cycles=500_000)
    assert first_mismatch(net, closed_form(net, a0), hw.trace) is None


def test_trained_digits_mlp(digits_mlp_net):
    net, data = digits_mlp_net
    a0 = net.encoder.encode(data.x_test[:3])
    golden = closed_form(net, a0)
    hw = run(Accelerator(net, lanes=16), a0, idle=0.1, backpressure=0.3)
    assert first_mismatch(net, golden, hw.trace) is None
    np.testing.assert_array_equal(hw.trace.classes, golden.classes)


def test_rtl_of_another_network_is_caught():
    net, rng = dense_net(3, act_bits=2)
    other = random_network(np.random.default_rng(99), conv=False, act_bits=2)
    while [l.weight.shape for l in other.layers] != [l.weight.shape for l in net.layers]:
        other = random_network(rng, conv=False, act_bits=2)
    a0 = random_inputs(rng, net, 3)
    hw = run(Accelerator(other, lanes=1), a0, max_cycles=200_000)
    mismatch = first_mismatch(net, closed_form(net, a0), hw.trace)
    assert mismatch is not None and mismatch.expected != mismatch.actual


def test_bad_lane_counts():
    net, _ = dense_net(4)
    largest = max(layer.weight.shape[0] for layer in net.layers)
    with pytest.raises(OnespikeError, match="lane count must be a positive integer, not 0"):
        Accelerator(net, lanes=0)
    with pytest.raises(OnespikeError, match="larger than the largest layer"):
        Accelerator(net, lanes=largest + 1)
    with pytest.raises(TypeError, match="use_dsp must be True or False, not 'no'"):
        Accelerator(net, use_dsp="no")


def test_dense_core_messages():
    from onespike.hdl.dense import DenseCore

    net, _ = dense_net(5)
    layer = net.layers[-1]
    widths = net.widths()[-1]
    with pytest.raises(ValueError, match="Lane count must be a positive integer, not 0"):
        DenseCore(layer, in_levels=net.in_levels(len(net.layers) - 1), widths=widths, lanes=0)
    with pytest.raises(ValueError, match="exceeds the layer's"):
        DenseCore(layer, in_levels=1, widths=widths, lanes=layer.weight.shape[0] + 1)


@pytest.mark.parametrize("cycles", [40, 150, 400])
def test_reset_in_the_middle_of_an_inference(cycles):
    """A reset while samples are loading, integrating or firing leaves the next ones exact."""
    net, rng = dense_net(6, act_bits=3)
    junk, a0 = random_inputs(rng, net, 2), random_inputs(rng, net, 2)
    for lanes in (1, max(layer.weight.shape[0] for layer in net.layers)):
        hw = run(Accelerator(net, lanes=lanes), a0, interrupt=(junk, cycles),
                 backpressure=0.3, max_cycles=100_000)
        assert first_mismatch(net, closed_form(net, a0), hw.trace) is None, f"lanes {lanes}"


def test_a_lane_count_is_a_budget_spent_where_the_model_finds_it_faster():
    """hdl.top.spend_lanes (``--lanes P``): never more lanes than P everywhere takes; the
    lanes by work only where the cycle model gives fewer cycles than P everywhere (checked
    here with the firing the accelerator gets), else P everywhere; a list as it is. The
    accelerator with lanes spent by work matches the golden model."""
    from onespike.hdl.cycles import cycle_estimate
    from onespike.hdl.streams import discard
    from onespike.hdl.plan import firing_per_layer, layer_lanes, spend_lanes

    def steady(net, lanes):
        top = Accelerator(net, lanes=lanes, firing=firing_per_layer(net, lanes, "auto"))
        return cycle_estimate(discard(top), spikes)["steady"]

    spent = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        net = random_network(rng, conv=seed % 2 == 1)
        spikes = [0.25 * np.prod(net.encoder.shape)] + [0.25 * np.prod(layer.out_shape)
                                                        for layer in net.layers[:-1]]
        budget = min(4, max(getattr(layer, "weight", np.zeros(1)).shape[0]
                            for layer in net.layers))
        uniform = layer_lanes(net, budget)
        lanes, how, cycles = spend_lanes(net, budget)
        assert sum(lanes) <= sum(uniform) and layer_lanes(net, lanes) == lanes
        if how == "by work":
            assert cycles["by work"] == steady(net, lanes) < steady(net, uniform) \
                == cycles["uniform"], seed
            spent.append((net, lanes, rng))
        else:
            assert how == "uniform" and lanes == uniform
        assert spend_lanes(net, uniform)[:2] == (uniform, "as given")
    assert spent, "no random network had its lanes spent by work"
    net, lanes, rng = spent[0]
    a0 = random_inputs(rng, net, 3)
    golden = closed_form(net, a0)
    hw = run(Accelerator(net, lanes=lanes), a0, backpressure=0.3, max_cycles=200_000)
    assert first_mismatch(net, golden, hw.trace) is None, lanes
    # a fault planted at the same lanes (one weight off in the hardware) is caught
    faulty = next(f for n, layer in enumerate(net.layers) if hasattr(layer, "weight")
                  for k in range(min(layer.weight.size, 16)) for delta in (8, -8, 32, -32)
                  for f in [_with_weight_moved(net, n, k, delta)]
                  if first_mismatch(net, golden, closed_form(f, a0)) is not None)
    hw = run(Accelerator(faulty, lanes=lanes), a0, max_cycles=200_000)
    assert first_mismatch(net, golden, hw.trace) is not None


def _with_weight_moved(net, n, k, delta):
    """``net`` with weight ``k`` (flat) of layer ``n`` moved by ``delta``."""
    import dataclasses

    weight = np.array(net.layers[n].weight)
    weight.reshape(-1)[k] += delta
    layers = list(net.layers)
    layers[n] = dataclasses.replace(layers[n], weight=weight)
    return dataclasses.replace(net, layers=tuple(layers))


def test_balanced_lanes_spend_the_budget_on_the_slowest_layer():
    """hdl.top.balance_lanes: never more lanes than the budget, each layer a valid count,
    the model's cycles no worse than one lane everywhere, and on a random network whose
    activity loads one layer most, that layer gets the most lanes."""
    from onespike.hdl.cycles import cycle_estimate
    from onespike.hdl.streams import discard
    from onespike.hdl.plan import balance_lanes, choose_firing, layer_lanes

    for seed in range(6):
        rng = np.random.default_rng(seed)
        net = random_network(rng, conv=seed % 2 == 1)
        activity = [np.asarray(a) for a in
                    closed_form(net, random_inputs(rng, net, 4)).activations[:len(net.layers)]]
        total = sum(layer_lanes(net, 3))
        lanes = balance_lanes(net, total, activity)
        assert sum(lanes) <= total and layer_lanes(net, lanes) == lanes

        def steady(p):
            top = Accelerator(net, lanes=p, firing=choose_firing(net, p, activity))
            return cycle_estimate(discard(top), activity)["steady"]
        assert steady(lanes) <= steady(1)
        if sum(lanes) > len(lanes):
            ones = discard(Accelerator(net, lanes=1, firing=choose_firing(net, 1, activity)))
            stages = {k: v for k, v in cycle_estimate(ones, activity)["stages"].items()
                      if k.startswith("layer") and not k.endswith("maxpool")}
            slowest = int(max(stages, key=stages.get)[5:].split("_")[0])
            assert lanes[slowest] == max(lanes), (seed, lanes, stages)


def _multiplying_layers(top) -> set:
    """The layers whose RTLIL holds a ``$mul`` cell (a multiply of two signals, which
    synthesis may give a DSP block; multiplies by constants are shifted adds)."""
    import re
    from amaranth.back import rtlil

    text = rtlil.convert(top, name="top", emit_src=False)
    return {int(name) for name, body in re.findall(r"\nmodule \\top\.layer(\d+)\n(.*?)\nend\n",
                                                   text, flags=re.S)
            if "cell $mul " in body}


def test_dsp_multiplies_per_layer():
    """use_dsp per layer: the layers given DSP multiplies count their blocks and hold the
    only multiplier cells, the others none; the RTL stays exact; a wrong number of flags
    is refused."""
    from onespike.hdl.plan import AcceleratorPlan
    from onespike.sim import closed_form, first_mismatch, random_inputs
    from onespike.sim.hardware import run

    net, rng = dense_net(4)
    a0 = random_inputs(rng, net, 3)
    flags = [True] + [False] * (len(net.layers) - 1)
    top = Accelerator(net, lanes=2, use_dsp=flags)
    assert top.dsp_layers() == tuple(flags)
    assert top.dsp_multipliers == top.cores[0].multipliers < top.multipliers
    assert _multiplying_layers(top) == {0}
    assert _multiplying_layers(Accelerator(net, lanes=2, use_dsp=flags[::-1])) == \
        {len(flags) - 1}
    hw = run(top, a0, max_cycles=400_000)
    assert first_mismatch(net, closed_form(net, a0), hw.trace) is None
    with pytest.raises(TypeError, match="use_dsp per layer must give"):
        AcceleratorPlan(net, use_dsp=[True])
