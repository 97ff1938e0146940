"""Golden model: the event simulation equals the closed form, neuron by neuron."""

import numpy as np
import pytest

from onespike.ir import NO_SPIKE, Dense, Encoder, Network
from onespike.sim import (Mismatch, closed_form, event_sim, first_mismatch, random_inputs,
                          random_network)


def tiny(weight, bias, ramp, *, a0_bits=2, a1_bits=2):
    enc = Encoder(shape=(len(weight[0]),), act_bits=a0_bits, scale=[1.0], offset=[0.0])
    hidden = Dense(in_shape=(len(weight[0]),), weight=weight, bias=bias, ramp=ramp,
                   act_bits=a1_bits, scale=1.0)
    readout = Dense(in_shape=(len(weight),), weight=np.eye(len(weight), dtype=int),
                    bias=np.zeros(len(weight), int), ramp=None, act_bits=None, scale=1.0)
    return Network(enc, (hidden, readout))


def test_spike_time_by_hand():
    # A0 = A1 = 3. Input a = 3 fires at t = 0; y = -1 + 2·3 = 5; a1 = floor(5/2) = 2, so the
    # neuron fires at t1 + A1 - a1 = 3 + 3 - 2 = 4. The second neuron: y = 1 - 3 = -2 → silent.
    net = tiny([[2], [-1]], [-1, 1], [2, 1])
    for trace in (closed_form(net, [[3]]), event_sim(net, [[3]])):
        assert trace.times[0].tolist() == [[0]]
        assert trace.times[1].tolist() == [[4, NO_SPIKE]]
        assert trace.logits.tolist() == [[2, 0]]
        assert trace.classes.tolist() == [0]
        assert trace.spikes.tolist() == [1] and trace.input_spikes.tolist() == [1]
        # one input spike adds a row of 2 weights, the hidden spike a row of 2 (zeros count)
        assert trace.synaptic_ops.tolist() == [2 + 2]


def test_threshold_is_inclusive_and_clipped():
    # y = R·A exactly fires at k = 0 (a = A); y far above saturates at A; y = R - 1 gives 0.
    net = tiny([[1], [1], [1]], [12 - 3, 100, 2 - 3], [4, 4, 1], a0_bits=2, a1_bits=2)
    for trace in (closed_form(net, [[3]]), event_sim(net, [[3]])):
        assert trace.activations[1].tolist() == [[3, 3, 2]]


@pytest.mark.parametrize("seed", range(40))
def test_event_equals_closed_form_random(seed):
    rng = np.random.default_rng(seed)
    net = random_network(rng)
    a0 = random_inputs(rng, net, 16)
    expected, actual = closed_form(net, a0), event_sim(net, a0)
    assert first_mismatch(net, expected, actual) is None
    for e, a in zip(expected.times, actual.times):
        np.testing.assert_array_equal(e, a)
    np.testing.assert_array_equal(expected.logits, actual.logits)
    np.testing.assert_array_equal(expected.synaptic_ops, actual.synaptic_ops)
    np.testing.assert_array_equal(expected.spikes, actual.spikes)


def test_random_networks_reach_both_saturation_ends():
    rng = np.random.default_rng(123)
    low = high = 0
    for _ in range(30):
        net = random_network(rng)
        trace = closed_form(net, random_inputs(rng, net, 16))
        for i, a in enumerate(trace.activations[1:], start=1):
            levels = net.in_levels(i)
            low += int((a == 0).any())
            high += int((a == levels).any())
    assert low > 10 and high > 10


def test_checker_reports_a_planted_fault_precisely():
    rng = np.random.default_rng(7)
    net = random_network(rng, conv=False, max_layers=3)
    while len(net.layers) < 2:
        net = random_network(rng, conv=False, max_layers=3)
    a0 = random_inputs(rng, net, 5)
    good = closed_form(net, a0)
    times = [t.copy() for t in good.times]
    times[1][3, 0] += 1  # one hidden spike one step late
    faulty = type(good)(**{**good.__dict__, "times": tuple(times)})
    mismatch = first_mismatch(net, good, faulty)
    assert (mismatch.sample, mismatch.layer, mismatch.neuron) == (3, "layer 0 (dense)", (0,))
    assert mismatch.actual == mismatch.expected + 1
    assert "sample 3" in str(mismatch)
    if mismatch.expected >= 0:
        assert f"expected spike at step {mismatch.expected}, got spike at step " \
            f"{mismatch.actual}" in str(mismatch)
    assert "expected no spike" in str(Mismatch(0, "layer 0 (dense)", (1,), NO_SPIKE, 3))


def test_widths_hold_the_extremes():
    # Every weight at its limit and every input saturated: the bound is reached, not passed.
    for sign in (+1, -1):
        n_in, qmax, levels = 9, 127, 15
        weight = np.full((4, n_in), sign * qmax)
        bias = np.full(4, sign * 1000)
        ramp = np.full(4, 7)
        enc = Encoder(shape=(n_in,), act_bits=4, scale=[1.0], offset=[0.0])
        hidden = Dense(in_shape=(n_in,), weight=weight, bias=bias, ramp=ramp, act_bits=4,
                       scale=1.0)
        readout = Dense(in_shape=(4,), weight=np.full((3, 4), sign * qmax),
                        bias=np.full(3, sign * 5), ramp=None, act_bits=None, scale=1.0)
        net = Network(enc, (hidden, readout))
        trace = event_sim(net, np.full((1, n_in), levels))
        widths = net.widths()
        assert trace.peak_current[0] == widths[0].current_bound == n_in * qmax
        if sign > 0:  # the positive extreme also rides the ramp to its end
            assert trace.peak_membrane[0] == widths[0].membrane_bound
        for peak_i, peak_v, w in zip(trace.peak_current, trace.peak_membrane, widths):
            assert peak_i <= w.current_bound < 2 ** (w.current_bits - 1)
            assert peak_v <= w.membrane_bound < 2 ** (w.membrane_bits - 1)


@pytest.mark.parametrize("seed", range(40, 60))
def test_random_peaks_within_widths(seed):
    rng = np.random.default_rng(seed)
    net = random_network(rng)
    trace = event_sim(net, random_inputs(rng, net, 8))
    for peak_i, peak_v, w in zip(trace.peak_current, trace.peak_membrane, net.widths()):
        if w is not None:
            assert peak_i <= w.current_bound and peak_v <= w.membrane_bound


def test_rejects_out_of_range_activations():
    net = tiny([[1]], [0], [1])
    with pytest.raises(ValueError, match="0..3"):
        closed_form(net, [[4]])
