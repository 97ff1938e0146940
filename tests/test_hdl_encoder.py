"""The spike encoder alone in the Amaranth simulator, against the golden input spike stream."""

import numpy as np
import pytest

from onespike.hdl.encoder import SpikeEncoder
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


def encoder_of(net):
    return SpikeEncoder(shape=net.encoder.shape, levels=net.encoder.levels)


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


@pytest.mark.parametrize("idle, backpressure", FLOWS)
@pytest.mark.parametrize("number", range(len(NETS)))
def test_encoder_sends_the_golden_input_spikes(number, idle, backpressure):
    net = NETS[number]
    a0 = random_inputs(np.random.default_rng(100 + number), net, 3)
    mismatch = check_encoder(encoder_of(net), net, a0, idle=idle, backpressure=backpressure,
                             seed=number)
    assert mismatch is None, mismatch


@pytest.mark.parametrize("number", range(len(NETS)))
def test_end_of_step_markers_carry_index_0(number):
    net = NETS[number]
    a0 = random_inputs(np.random.default_rng(number), net, 2)
    inputs = [{"value": int(v)} for v in a0.reshape(-1)]
    outputs = run_stream(encoder_of(net), inputs, until=markers(2 * net.encoder.levels))
    ends = [t["index"] for t in outputs if t["end"]]
    zero = {"x": 0, "y": 0, "c": 0} if len(net.encoder.shape) == 3 else 0
    assert ends and all(index == zero for index in ends), ends


@pytest.mark.parametrize("encoder", [SpikeEncoder, OneShortEncoder])
def test_a_planted_fault_is_caught(encoder):
    net = NETS[0]
    a0 = random_inputs(np.random.default_rng(7), net, 3)
    mismatch = check_encoder(encoder(shape=net.encoder.shape, levels=net.encoder.levels), net,
                             a0, idle=0.3, backpressure=0.5)
    assert (mismatch is not None) == (encoder is OneShortEncoder), mismatch
