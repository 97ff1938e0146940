"""Golden model on sequences: recurrent layers, closed form against event simulation."""

import numpy as np
import pytest

from onespike.errors import OnespikeError
from onespike.ir import NO_SPIKE, Dense, Encoder, Network, Recurrent, load, save
from onespike.sim import (closed_form, event_sim, first_mismatch, random_inputs,
                          random_recurrent_network)


def tiny_rnn(steps, *, x_bits=2, h_bits=2):
    """One input, one recurrent neuron that adds its input to twice... its state."""
    enc = Encoder(shape=(1,), act_bits=x_bits, scale=[1.0], offset=[0.0], steps=steps)
    rnn = Recurrent(in_shape=(1,), weight=[[2]], recurrent=[[1]], bias=[-1], ramp=[2],
                    act_bits=h_bits, scale=1.0)
    readout = Dense(in_shape=(1,), weight=[[1]], bias=[0], ramp=None, act_bits=None,
                    scale=1.0)
    return Network(enc, (rnn, readout))


def test_state_update_by_hand():
    # h_t = clip(floor((2·x_t + h_{t−1} − 1) / 2), 0, 3), h_{−1} = 0
    # x = 1, 2, 0, 3: h = floor(1/2)=0, floor(3/2)=1, floor(0/2)=0, floor(5/2)=2
    net = tiny_rnn(4)
    for trace in (closed_form(net, [[[1], [2], [0], [3]]]),
                  event_sim(net, [[[1], [2], [0], [3]]])):
        assert trace.activations[1].tolist() == [[2]]           # the last step's state
        assert trace.logits.tolist() == [[2]]
        # the input map is per step: times in the input's window, A0 = 3
        assert trace.times[0].tolist() == [[[2], [1], [NO_SPIKE], [0]]]
        # x spikes: 3 (one addition each); h spikes: h_1 = 1 feeds step 2 (one addition),
        # h_3 = 2 feeds the readout (one)
        assert trace.synaptic_ops.tolist() == [3 + 1 + 1]
        assert trace.spikes.tolist() == [2]


def test_state_saturates_and_feeds_back():
    # x = 3 every step: h_0 = floor(5/2) = 2, h_1 = floor(7/2) = 3, then 3 (clipped: 8/2=4)
    net = tiny_rnn(3)
    for trace in (closed_form(net, [[[3], [3], [3]]]), event_sim(net, [[[3], [3], [3]]])):
        assert trace.logits.tolist() == [[3]]


@pytest.mark.parametrize("seed", range(40))
def test_event_equals_closed_form_on_random_recurrent_networks(seed):
    rng = np.random.default_rng(1000 + seed)
    net = random_recurrent_network(rng)
    a0 = random_inputs(rng, net, 8)
    expected, actual = closed_form(net, a0), event_sim(net, a0)
    assert first_mismatch(net, expected, actual) is None
    for e, a in zip(expected.times, actual.times):
        np.testing.assert_array_equal(e, a)
    np.testing.assert_array_equal(expected.logits, actual.logits)
    np.testing.assert_array_equal(expected.synaptic_ops, actual.synaptic_ops)
    np.testing.assert_array_equal(expected.spikes, actual.spikes)
    for peak_i, peak_v, w in zip(actual.peak_current, actual.peak_membrane, net.widths()):
        if w is not None:
            assert peak_i <= w.current_bound and peak_v <= w.membrane_bound


def test_closed_form_matches_a_plain_loop():
    """The closed form against the state update written out with numpy, step by step."""
    rng = np.random.default_rng(7)
    for _ in range(20):
        net = random_recurrent_network(rng, signal=False)
        a0 = random_inputs(rng, net, 5)
        rec = [i for i, l in enumerate(net.layers) if isinstance(l, Recurrent)]
        a = a0
        for i, layer in enumerate(net.layers[:-1]):
            if isinstance(layer, Recurrent):
                h, out = np.zeros((len(a0), layer.out_shape[0]), np.int64), []
                for t in range(net.steps):
                    y = a[:, t] @ layer.weight.T + h @ layer.recurrent.T + layer.bias
                    h = np.clip(np.floor_divide(y, layer.ramp), 0, layer.levels)
                    out.append(h)
                a = np.stack(out, 1) if i < rec[-1] else h
            else:
                y = a @ layer.weight.T + layer.bias
                a = np.clip(np.floor_divide(y, layer.ramp), 0, layer.levels)
        readout = net.layers[-1]
        np.testing.assert_array_equal(closed_form(net, a0).logits,
                                      a @ readout.weight.T + readout.bias)


def test_random_recurrent_networks_saturate_at_both_ends_and_vary_bits():
    rng = np.random.default_rng(11)
    low = high = unequal = 0
    for _ in range(30):
        net = random_recurrent_network(rng)
        trace = closed_form(net, random_inputs(rng, net, 8))
        for i, layer in enumerate(net.layers):
            if isinstance(layer, Recurrent):
                unequal += net.in_levels(i) != layer.levels
                state = trace.activations[i + 1]
                low += int((state == 0).any())
                high += int((state == layer.levels).any())
    assert low > 5 and high > 5 and unequal > 5


def test_sequence_file_roundtrip_and_version_one_still_loads(tmp_path):
    net = random_recurrent_network(np.random.default_rng(5))
    back = load(save(net, tmp_path / "rnn.npz"))
    assert back.header() == net.header() and back.steps == net.steps
    for name, array in net.arrays().items():
        np.testing.assert_array_equal(back.arrays()[name], array)


def test_recurrent_refusals():
    enc = Encoder(shape=(2,), act_bits=2, scale=[1.0], offset=[0.0])
    rnn = Recurrent(in_shape=(2,), weight=[[1, 1]], recurrent=[[1]], bias=[0], ramp=[1],
                    act_bits=2, scale=1.0)
    readout = Dense(in_shape=(1,), weight=[[1]], bias=[0], ramp=None, act_bits=None,
                    scale=1.0)
    with pytest.raises(OnespikeError, match="takes sequences"):
        Network(enc, (rnn, readout))
    with pytest.raises(OnespikeError, match="state weight has shape"):
        Recurrent(in_shape=(2,), weight=[[1, 1]], recurrent=[[1, 1]], bias=[0], ramp=[1],
                  act_bits=2, scale=1.0)
    with pytest.raises(OnespikeError, match="cannot be the readout"):
        Recurrent(in_shape=(2,), weight=[[1, 1]], recurrent=[[1]], bias=[0], ramp=None,
                  act_bits=None, scale=1.0)
    seq = Encoder(shape=(2,), act_bits=2, scale=[1.0], offset=[0.0], steps=3)
    with pytest.raises(OnespikeError, match="expects \\(3, 2\\)"):
        seq.encode(np.zeros((4, 2)))
