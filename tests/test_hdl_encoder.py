"""The spike encoder alone in the Amaranth simulator, against the golden input spike stream."""

import numpy as np
import pytest

from onespike.hdl.encoder import SPIKE_CYCLES, SpikeEncoder
from onespike.ir import Dense, Encoder, Network
from onespike.sim import random_inputs, random_network

from helpers import FLOWS, check_encoder, markers, run_stream


def image_of_16_neurons():
    """A (1, 4, 4) input: with a power-of-two neuron count, the encoder's coordinate memory
    has no addresses past its end, so a marker that reads it names a real neuron."""
    encoder = Encoder(shape=(1, 4, 4), act_bits=2, scale=np.ones(1), offset=np.zeros(1))
    readout = Dense(in_shape=(1, 4, 4), weight=np.ones((2, 16), np.int64),
                    bias=np.zeros(2, np.int64), ramp=None, act_bits=None, scale=1.0)
    return Network(encoder, (readout,))


NETS = [random_network(np.random.default_rng(seed), conv=conv, act_bits=bits)
        for seed, conv, bits in ((23, False, 2), (3, True, 1), (1, True, 2), (6, True, 3))] \
    + [image_of_16_neurons()]


def encoder_of(net, spike_cycles=1):
    return SpikeEncoder(shape=net.encoder.shape, levels=net.encoder.levels,
                        spike_cycles=spike_cycles)


class SkippingEncoder(SpikeEncoder):
    """Planted fault in the registered list walk: no cycle to read a link, so each spike
    is sent with the link read for the one before."""

    def _fetches(self):
        return False


class OneShortEncoder(SpikeEncoder):
    """Planted fault: the load counter wraps one neuron early (the last activation of a
    sample is taken as the first of the next)."""

    @property
    def neurons(self):
        return super().neurons - 1


def test_the_networks_cover_vectors_and_images():
    assert {len(net.encoder.shape) for net in NETS} == {1, 3}
    assert {net.encoder.levels for net in NETS} == {1, 3, 7}
    assert min(int(np.prod(net.encoder.shape)) for net in NETS) == 1      # a single neuron
    assert any(net.encoder.signal_shape for net in NETS)                  # a 1-D signal


@pytest.mark.parametrize("spike_cycles", SPIKE_CYCLES)
@pytest.mark.parametrize("idle, backpressure", FLOWS)
@pytest.mark.parametrize("number", range(len(NETS)))
def test_encoder_sends_the_golden_input_spikes(number, idle, backpressure, spike_cycles):
    net = NETS[number]
    a0 = random_inputs(np.random.default_rng(100 + number), net, 3)
    mismatch = check_encoder(encoder_of(net, spike_cycles), net, a0, idle=idle,
                             backpressure=backpressure, seed=number)
    assert mismatch is None, mismatch


@pytest.mark.parametrize("spike_cycles", SPIKE_CYCLES)
@pytest.mark.parametrize("number", range(len(NETS)))
def test_end_of_step_markers_carry_index_0(number, spike_cycles):
    net = NETS[number]
    a0 = random_inputs(np.random.default_rng(number), net, 2)
    inputs = [{"value": int(v)} for v in a0.reshape(-1)]
    outputs = run_stream(encoder_of(net, spike_cycles), inputs, until=markers(2 * net.encoder.levels))
    ends = [t["index"] for t in outputs if t["end"]]
    zero = {"x": 0, "y": 0, "c": 0} if len(net.encoder.shape) == 3 else 0
    assert ends and all(index == zero for index in ends), ends


@pytest.mark.parametrize("encoder, spike_cycles, backpressure, number", [
    (SpikeEncoder, 1, 0.5, 0), (OneShortEncoder, 1, 0.5, 0), (SpikeEncoder, 2, 0.5, 0),
    (OneShortEncoder, 2, 0.5, 0), (SpikeEncoder, 2, 0.0, 2), (SkippingEncoder, 2, 0.0, 2)])
def test_a_planted_fault_is_caught(encoder, spike_cycles, backpressure, number):
    """(A skipped link read shows in lists of more than one neuron, here of a (1, 4, 8)
    image, when the consumer takes each spike at once: a spike held back by backpressure
    gives the read its cycle.)"""
    net = NETS[number]
    a0 = random_inputs(np.random.default_rng(7), net, 3)
    mismatch = check_encoder(encoder(shape=net.encoder.shape, levels=net.encoder.levels,
                                     spike_cycles=spike_cycles),
                             net, a0, idle=0.3, backpressure=backpressure)
    assert (mismatch is not None) == (encoder is not SpikeEncoder), mismatch


def test_two_cycles_a_spike_send_every_other_cycle():
    """Without backpressure the two-cycle encoder's spikes are two cycles apart (and the
    one-cycle encoder's one): the cycle model's ``fetch``."""
    net = NETS[2]
    a0 = np.full((1, *net.encoder.shape), net.encoder.levels)     # one list holds them all
    inputs = [{"value": int(v)} for v in a0.reshape(-1)]
    for cycles in SPIKE_CYCLES:
        outputs = run_stream(encoder_of(net, cycles), inputs, timed=True,
                             until=lambda sent: any(out["end"] for _, out in sent))
        times = [t for t, out in outputs if not out["end"]]
        assert len(times) == a0.size and set(np.diff(times)) == {cycles}, (cycles, times)
