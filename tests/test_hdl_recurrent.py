"""Recurrent layers in the Amaranth simulator: whole accelerators on sequence networks
against the golden model, every layer at every sequence step; planted faults in the
recurrent weights and in the state loop-back; a reset in the middle of a sequence."""

import dataclasses

import numpy as np
import pytest
from amaranth.hdl import Mux

from onespike.errors import OnespikeError
from onespike.hdl.dense_top import DenseAccelerator
from onespike.hdl.recurrent import RecurrentCore
from onespike.hdl.top import Accelerator
from onespike.ir import Conv, Network, Recurrent
from onespike.sim import closed_form, first_mismatch, random_inputs, random_recurrent_network
from onespike.sim.hardware import run

# random sequence networks (max 6 steps, 6 neurons a layer), picked for their spread
SEEDS = (4, 10, 17, 22, 25)


def sequence_net(seed, **kw):
    rng = np.random.default_rng(seed)
    return random_recurrent_network(rng, max_steps=6, max_width=6, **kw), rng


def recurrent_layers(net):
    return [n for n, layer in enumerate(net.layers) if isinstance(layer, Recurrent)]


def test_the_networks_cover_the_cases():
    nets = [sequence_net(seed)[0] for seed in SEEDS]
    assert any(len(recurrent_layers(net)) == 2 for net in nets)           # stacked
    assert any(isinstance(net.layers[0], Conv) for net in nets)           # a 1-D conv first
    assert any(net.in_levels(n) != net.layers[n].levels
               for net in nets for n in recurrent_layers(net))           # A_x != A_h
    assert any(net.in_levels(n) == net.layers[n].levels
               for net in nets for n in recurrent_layers(net))
    assert {net.steps for net in nets} >= {2, 6}


def check(net, a0, top, **flow):
    golden = closed_form(net, a0)
    hw = run(top, a0, max_cycles=400_000, **flow)
    np.testing.assert_array_equal(hw.trace.classes, golden.classes)
    return first_mismatch(net, golden, hw.trace)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_sequence_networks_spike_for_spike(seed):
    """Every layer's spike times at every sequence step, logits and classes; lanes that cut
    the recurrent layer's groups unevenly, both firings, idle input and backpressure."""
    net, rng = sequence_net(seed)
    a0 = random_inputs(rng, net, 3)
    lanes = 1 + seed % 3
    firing = ("sweep", "sorted")[seed % 2]
    mismatch = check(net, a0, Accelerator(net, lanes=lanes, firing=firing), idle=0.2,
                     backpressure=0.3, seed=seed)
    assert mismatch is None, mismatch


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(30, 42))
def test_more_random_sequence_networks(seed):
    """Sequences of up to 30 steps, 1–8 bits."""
    rng = np.random.default_rng(seed)
    net = random_recurrent_network(rng, max_steps=30, max_width=8)
    a0 = random_inputs(rng, net, 2)
    mismatch = check(net, a0, Accelerator(net, lanes=1 + seed % 2), idle=0.1,
                     backpressure=0.2, seed=seed)
    assert mismatch is None, mismatch


def a_recurrent_weight_that_matters(net, a0):
    """``net`` with one recurrent weight's sign flipped (the first, in C order, that changes
    the golden output): a planted fault in the ``W_h`` half of the weight memory."""
    golden = closed_form(net, a0)
    for n in recurrent_layers(net):
        layer = net.layers[n]
        for position in map(tuple, np.argwhere(layer.recurrent != 0)):
            recurrent = layer.recurrent.copy()
            recurrent[position] = -recurrent[position]
            layers = list(net.layers)
            layers[n] = dataclasses.replace(layer, recurrent=recurrent)
            faulty = Network(net.encoder, tuple(layers))
            if first_mismatch(net, golden, closed_form(faulty, a0)) is not None:
                return faulty
    raise LookupError("no recurrent weight changes the output on these inputs")


@pytest.mark.parametrize("faulty", [False, True], ids=["as built", "one W_h sign flipped"])
def test_a_wrong_recurrent_weight_is_caught(faulty):
    net, rng = sequence_net(24)
    a0 = random_inputs(rng, net, 3)
    built = a_recurrent_weight_that_matters(net, a0) if faulty else net
    mismatch = check(net, a0, Accelerator(built, lanes=2), backpressure=0.3)
    assert (mismatch is not None) == faulty, mismatch


@pytest.mark.parametrize("faulty", [False, True], ids=["as built", "state rows rotated"])
def test_a_broken_state_loop_back_is_caught(faulty, monkeypatch):
    """The planted fault: ``h_{t−1}``'s spike of neuron k lands on the state row of neuron
    k + 1 (the last on the first's), as a miswired loop-back would; on this network that
    is a different golden output (the columns of ``W_h`` rolled)."""
    net, rng = sequence_net(24)
    a0 = random_inputs(rng, net, 3)
    golden = closed_form(net, a0)
    rolled = Network(net.encoder, tuple(
        dataclasses.replace(layer, recurrent=np.roll(layer.recurrent, -1, axis=1))
        if isinstance(layer, Recurrent) else layer for layer in net.layers))
    assert first_mismatch(net, golden, closed_form(rolled, a0)) is not None
    if faulty:
        def rotated(self, neuron):
            last = self._layer.recurrent.shape[0] - 1
            return self.inputs + Mux(neuron == last, 0, neuron + 1)
        monkeypatch.setattr(RecurrentCore, "_state_input", rotated)
    hw = run(Accelerator(net, lanes=1), a0, backpressure=0.3, max_cycles=400_000)
    assert (first_mismatch(net, golden, hw.trace) is not None) == faulty


@pytest.mark.parametrize("share", [0.3, 0.6, 0.9])
def test_a_reset_in_the_middle_of_a_sequence_leaves_no_state(share):
    """``rst`` while junk sequences are part-way through (the first sample's steps, windows
    later on): what follows is as if nothing came before; no stale ``h`` survives."""
    net, rng = sequence_net(4)
    junk, a0 = random_inputs(rng, net, 2), random_inputs(rng, net, 2)
    top = Accelerator(net, lanes=2)
    per_sample = run(top, junk[:1], max_cycles=400_000).cycles
    cycles = max(1, int(share * per_sample))
    hw = run(Accelerator(net, lanes=2), a0, interrupt=(junk, cycles), backpressure=0.3,
             max_cycles=400_000)
    assert first_mismatch(net, closed_form(net, a0), hw.trace) is None, f"after {cycles}"


def test_the_dense_coding_refuses_sequences():
    net, _ = sequence_net(4)
    with pytest.raises(OnespikeError, match="dense coding has no recurrent core.*--coding ttfs"):
        DenseAccelerator(net)
