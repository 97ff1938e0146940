"""Rate coding (sim/rate.py): counts equal the quantized activations exactly where the module
docstring claims it (first spiking layer with analog input at T = A_1; bipolar neurons after
their correction steps at T = A), can differ where it does not, and the costs add up."""

import numpy as np
import pytest

from onespike.ir import Dense, Encoder, MaxPool, Network
from onespike.sim import (closed_form, guaranteed_exact, random_inputs, random_network,
                          random_recurrent_network, rate_quantized, rate_sim, rate_summary,
                          sufficient_correction_steps, synaptic_fanout)


def first_spiking_maps(net):
    """Indices of the maps produced by the first synaptic layer and any max-pools after it."""
    first = next(i for i, layer in enumerate(net.layers) if not isinstance(layer, MaxPool))
    if net.layers[first].is_readout:
        return []
    maps = [first + 1]
    while isinstance(net.layers[maps[-1]], MaxPool):
        maps.append(maps[-1] + 1)
    return maps


def first_levels(net):
    return next(l.levels for l in net.layers if not isinstance(l, MaxPool))


@pytest.mark.parametrize("conv", [False, True])
def test_first_layer_with_analog_input_is_exact(conv):
    rng = np.random.default_rng(1 + conv)
    checked = 0
    for _ in range(60):
        net = random_network(rng, conv=conv)  # per-layer act_bits 1..8
        a0 = random_inputs(rng, net, 6)
        maps = first_spiking_maps(net)
        if not maps:
            continue
        q = closed_form(net, a0)
        steps = first_levels(net)
        other = int(rng.integers(1, 20))
        for bipolar in (False, True):
            at_a = rate_sim(net, a0, steps=steps, bipolar=bipolar)
            at_t = rate_sim(net, a0, steps=other, bipolar=bipolar)
            closed_t, _ = rate_quantized(net, a0, steps=other)
            for i in maps:
                assert np.array_equal(at_a.counts[i], q.activations[i])
                assert np.array_equal(at_t.counts[i], closed_t[i])
                assert not at_a.negative_counts[i].any()
        checked += 1
    assert checked > 30


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("coding", ["analog", "spikes"])
def test_bipolar_after_correction_is_the_quantized_network(conv, coding):
    rng = np.random.default_rng(10 + 2 * conv + (coding == "spikes"))
    deep = 0
    for _ in range(40):
        bits = int(rng.integers(1, 6))
        net = random_network(rng, conv=conv, act_bits=bits)  # one A for all layers
        a0 = random_inputs(rng, net, 6)
        steps = (1 << bits) - 1
        q = closed_form(net, a0)
        r = rate_sim(net, a0, steps=steps, bipolar=True, input_coding=coding)
        for got, want in zip(r.counts[1:], q.activations[1:]):
            assert np.array_equal(got, want)
        assert np.array_equal(r.logits, steps * q.logits)
        assert np.array_equal(r.classes, q.classes)
        assert r.total_steps == steps + sufficient_correction_steps(net, steps, coding)
        assert all((s <= r.total_steps).all() for s in r.silent_from)
        deep += sum(not isinstance(l, MaxPool) for l in net.layers[:-1]) >= 2
        # any other T: the settled counts are the T-level network of rate_quantized
        other = int(rng.integers(1, 20))
        r = rate_sim(net, a0, steps=other, bipolar=True, input_coding=coding)
        counts, logits = rate_quantized(net, a0, steps=other, input_coding=coding)
        assert all(np.array_equal(g, w) for g, w in zip(r.counts, counts))
        assert np.array_equal(r.logits, logits)
    assert deep >= 5


def two_layer_example():
    """a0 = (3, 1) → hidden (3, 1) → second layer y = (3 - 2·1, 3·1) = (1, 3); A = T = 3."""
    enc = Encoder(shape=(2,), act_bits=2, scale=[1.0], offset=[0.0])
    eye = np.eye(2, dtype=np.int64)
    hidden = Dense(in_shape=(2,), weight=eye, bias=[0, 0], ramp=[1, 1], act_bits=2,
                   scale=1.0)
    second = Dense(in_shape=(2,), weight=[[1, -2], [0, 3]], bias=[0, 0], ramp=[1, 1],
                   act_bits=2, scale=1.0)
    readout = Dense(in_shape=(2,), weight=eye, bias=[0, 0], ramp=None, act_bits=None,
                    scale=1.0)
    return Network(enc, (hidden, second, readout)), np.array([[3, 1]])


def test_unipolar_over_and_under_firing_by_hand():
    net, a0 = two_layer_example()
    q = closed_form(net, a0)
    assert q.activations[2].tolist() == [[1, 3]] and q.classes.tolist() == [1]
    u = rate_sim(net, a0, steps=3, keep_trains=True)
    assert u.counts[1].tolist() == [[3, 1]]          # first layer: exact (claim 1)
    # neuron 0 fires at steps 0 and 1 before the -2 arrives at step 2: over-firing;
    # neuron 1 gets all its charge (9 = 3θ) at step 2 and can fire once: under-firing.
    assert u.trains[2][:, 0].tolist() == [[1, 0], [1, 0], [0, 1]]
    assert u.counts[2].tolist() == [[2, 1]] and u.classes.tolist() == [0]
    # bipolar: a -1 spike undoes the over-firing at step 2; the correction steps 3 and 4
    # fire the two missing spikes of neuron 1
    b = rate_sim(net, a0, steps=3, bipolar=True, keep_trains=True)
    assert b.total_steps == 3 + 3
    assert b.trains[2][:, 0].tolist() == [[1, 0], [1, 0], [-1, 1], [0, 1], [0, 1], [0, 0]]
    assert b.counts[2].tolist() == [[1, 3]] and b.negative_counts[2].tolist() == [[1, 0]]
    assert b.logits.tolist() == (3 * q.logits).tolist() and b.classes.tolist() == [1]
    assert b.silent_from[2].tolist() == [5]
    # too few correction steps: not yet exact
    early = rate_sim(net, a0, steps=3, bipolar=True, correction_steps=1)
    assert early.counts[2].tolist() == [[1, 2]]
    assert guaranteed_exact(net, steps=3, bipolar=True)
    assert not guaranteed_exact(net, steps=3)
    assert not guaranteed_exact(net, steps=3, bipolar=True, correction_steps=1)
    # costs: analog input = 2 inputs × 2 synapses of MACs; spikes × fan-out 2
    assert u.input_macs.tolist() == [4] and u.input_spikes.tolist() == [0]
    assert u.positive_spikes.tolist() == [4 + 3] and u.negative_spikes.tolist() == [0]
    assert u.synaptic_ops.tolist() == [(4 + 3) * 2]
    assert b.positive_spikes.tolist() == [4 + 5] and b.negative_spikes.tolist() == [1]
    assert b.spikes.tolist() == [10] and b.synaptic_ops.tolist() == [(4 + 6) * 2]


def test_guaranteed_exact_is_never_wrong():
    rng = np.random.default_rng(5)
    claimed = 0
    for _ in range(120):
        bits = int(rng.integers(1, 5))
        net = random_network(rng, act_bits=bits if rng.random() < 0.8 else None)
        a0 = random_inputs(rng, net, 4)
        steps = (1 << bits) - 1 if rng.random() < 0.7 else int(rng.integers(1, 16))
        bipolar = bool(rng.random() < 0.5)
        coding = "analog" if rng.random() < 0.6 else "spikes"
        correction = None if not bipolar or rng.random() < 0.6 else int(rng.integers(0, 20))
        if not guaranteed_exact(net, steps=steps, bipolar=bipolar, input_coding=coding,
                                correction_steps=correction):
            continue
        claimed += 1
        q = closed_form(net, a0)
        r = rate_sim(net, a0, steps=steps, bipolar=bipolar, input_coding=coding,
                     correction_steps=correction)
        assert all(np.array_equal(g, w) for g, w in zip(r.counts[1:], q.activations[1:]))
        assert np.array_equal(r.logits, steps * q.logits)
    assert claimed >= 30


def test_unipolar_deeper_layers_are_not_exact_on_random_networks():
    rng = np.random.default_rng(7)
    differs = checked = 0
    for _ in range(60):
        bits = int(rng.integers(2, 5))
        net = random_network(rng, conv=False, act_bits=bits)
        if sum(not isinstance(l, MaxPool) for l in net.layers[:-1]) < 2:
            continue
        a0 = random_inputs(rng, net, 8)
        steps = (1 << bits) - 1
        q = closed_form(net, a0)
        u = rate_sim(net, a0, steps=steps)
        b = rate_sim(net, a0, steps=steps, bipolar=True)
        differs += any(not np.array_equal(g, w) for g, w in zip(u.counts, q.activations))
        assert all(np.array_equal(g, w) for g, w in zip(b.counts[1:], q.activations[1:]))
        checked += 1
    assert checked >= 10 and differs >= 1


@pytest.mark.parametrize("coding", ["analog", "spikes"])
@pytest.mark.parametrize("bipolar", [False, True])
def test_spike_and_op_accounting(coding, bipolar):
    rng = np.random.default_rng(3)
    for _ in range(25):
        net = random_network(rng)
        a0 = random_inputs(rng, net, 4)
        steps = int(rng.integers(1, 16))
        r = rate_sim(net, a0, steps=steps, bipolar=bipolar, input_coding=coding,
                     keep_trains=True)
        pos = neg = ops = macs = 0
        for i, (train, layer) in enumerate(zip(r.trains, net.layers)):
            fanout = synaptic_fanout(layer) if not isinstance(layer, MaxPool) else 0
            if train is None:  # analog map: the input or a max-pool of it
                assert coding == "analog"
                if not isinstance(layer, MaxPool):
                    macs = macs + ((r.counts[i] > 0) * fanout).reshape(len(a0), -1).sum(1)
                continue
            assert train.shape == (r.total_steps, len(a0)) + tuple(layer.in_shape)
            assert np.isin(train, (-1, 0, 1)).all()          # one spike per step at most
            assert bipolar or (train >= 0).all()
            running = np.cumsum(train, axis=0)
            assert running.min() >= 0 and running.max() <= steps
            assert np.array_equal(running[-1], r.counts[i])
            assert np.array_equal((train < 0).sum(0), r.negative_counts[i])
            per = lambda m: m.reshape(len(a0), -1).sum(1)
            ops = ops + per(np.abs(train).sum(0) * fanout)
            if i > 0 and not isinstance(net.layers[i - 1], MaxPool):
                pos = pos + per((train > 0).sum(0))
                neg = neg + per((train < 0).sum(0))
        assert np.array_equal(r.positive_spikes, np.broadcast_to(pos, (len(a0),)))
        assert np.array_equal(r.negative_spikes, np.broadcast_to(neg, (len(a0),)))
        assert np.array_equal(r.synaptic_ops, np.broadcast_to(ops, (len(a0),)))
        assert np.array_equal(r.input_macs, np.broadcast_to(macs, (len(a0),)))
        if coding == "spikes":
            assert np.array_equal(r.counts[0], steps * a0 // net.encoder.levels)
            assert np.array_equal(r.input_spikes, r.counts[0].reshape(len(a0), -1).sum(1))
        else:
            assert not r.input_spikes.any()


def test_trained_digits_mlp(digits_mlp_net):
    net, data = digits_mlp_net
    a0 = net.encoder.encode(data.x_test)
    q = closed_form(net, a0)
    steps = net.layers[0].levels
    assert steps == 15 and len(net.layers) == 2
    # one hidden layer fed by the analog input: unipolar is exact too (claim 1)
    assert guaranteed_exact(net, steps=steps)
    assert not guaranteed_exact(net, steps=steps, input_coding="spikes")
    for bipolar in (False, True):
        r = rate_sim(net, a0, steps=steps, bipolar=bipolar)
        assert np.array_equal(r.counts[1], q.activations[1])
        assert np.array_equal(r.logits, steps * q.logits)
        assert np.array_equal(r.classes, q.classes)
        assert not r.negative_spikes.any() and r.total_steps == steps
        # the rate code spends `a` spikes where TTFS spends one
        assert np.array_equal(r.spikes, q.activations[1].sum(1))
        assert (r.spikes >= q.spikes).all() and r.spikes.sum() > 3 * q.spikes.sum()
    # spike-coded input: the hidden layer is fed by spikes; bipolar settles exactly
    b = rate_sim(net, a0, steps=steps, bipolar=True, input_coding="spikes")
    assert np.array_equal(b.counts[1], q.activations[1]) and b.total_steps == 2 * steps
    summary, classes = rate_summary(net, data.x_test, data.y_test, steps=steps,
                                    bipolar=True, batch=100)
    assert np.array_equal(classes, q.classes)
    assert summary["accuracy"] == pytest.approx(np.mean(q.classes == data.y_test))
    assert summary["guaranteed_exact"] and summary["total_steps"] == steps
    assert summary["spikes_per_inference"] == pytest.approx(q.activations[1].sum() / len(a0))
    # fewer steps: another (coarser) quantization, not the quantized network
    coarse = rate_sim(net, a0, steps=3)
    assert not np.array_equal(coarse.classes, q.classes)


def test_arguments_are_checked():
    net, a0 = two_layer_example()
    with pytest.raises(ValueError, match="steps"):
        rate_sim(net, a0, steps=0)
    with pytest.raises(ValueError, match="bipolar"):
        rate_sim(net, a0, steps=3, correction_steps=2)
    with pytest.raises(ValueError, match="input_coding"):
        rate_sim(net, a0, steps=3, input_coding="poisson")
    with pytest.raises(ValueError, match="0..3"):
        rate_sim(net, a0 + 3, steps=3)


# -- recurrent layers: h_{t−1}'s trains fed back in step t's window ------------------------
@pytest.mark.parametrize("coding", ["analog", "spikes"])
def test_recurrent_bipolar_after_correction_is_the_quantized_network(coding):
    rng = np.random.default_rng(20 + (coding == "spikes"))
    for _ in range(12):
        bits = int(rng.integers(1, 4))
        net = random_recurrent_network(rng, max_steps=5, act_bits=bits, max_width=6)
        a0 = random_inputs(rng, net, 4)
        steps = (1 << bits) - 1
        q = closed_form(net, a0)
        assert guaranteed_exact(net, steps=steps, bipolar=True, input_coding=coding)
        r = rate_sim(net, a0, steps=steps, bipolar=True, input_coding=coding)
        for got, want in zip(r.counts[1:], q.activations[1:]):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(r.logits, steps * q.logits)
        # a recurrent layer settles T steps later in every sequence step
        assert r.total_steps == steps + sufficient_correction_steps(net, steps, coding)
        assert sufficient_correction_steps(net, steps, coding) >= steps * (net.steps - 1)
        other = int(rng.integers(1, 8))
        r = rate_sim(net, a0, steps=other, bipolar=True, input_coding=coding)
        counts, logits = rate_quantized(net, a0, steps=other, input_coding=coding)
        assert all(np.array_equal(g, w) for g, w in zip(r.counts, counts))
        np.testing.assert_array_equal(r.logits, logits)


def test_recurrent_one_step_code_equals_the_golden_model():
    # A = T = 1: every charge, fed-back state included, arrives in the window's one step, so
    # even the unipolar neuron is exact, and its spikes and additions are the golden model's
    rng = np.random.default_rng(30)
    for _ in range(15):
        net = random_recurrent_network(rng, act_bits=1, max_steps=8)
        a0 = random_inputs(rng, net, 5)
        q = closed_form(net, a0)
        r = rate_sim(net, a0, steps=1, input_coding="spikes")
        for got, want in zip(r.counts, q.activations):
            np.testing.assert_array_equal(got, want)
            assert got.shape == want.shape
        np.testing.assert_array_equal(r.classes, q.classes)
        np.testing.assert_array_equal(r.positive_spikes, q.spikes)
        np.testing.assert_array_equal(r.synaptic_ops, q.synaptic_ops)
        np.testing.assert_array_equal(r.input_spikes, q.input_spikes)


def test_recurrent_unipolar_is_not_guaranteed():
    net = random_recurrent_network(np.random.default_rng(4), max_steps=5)
    while net.steps < 2:
        net = random_recurrent_network(np.random.default_rng(net.steps + 40), max_steps=5)
    levels = {l.levels for l in net.layers[:-1] if not isinstance(l, MaxPool)}
    steps = max(levels)
    assert not guaranteed_exact(net, steps=steps)
    a0 = random_inputs(np.random.default_rng(1), net, 3)
    summary, classes = rate_summary(net, net.encoder.encode(a0 * 1.0), steps=steps,
                                    bipolar=True)
    assert summary["total_steps"] == steps + sufficient_correction_steps(net, steps)
    assert len(classes) == 3
