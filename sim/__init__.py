"""Golden model (bit-exact reference), trace checker and random networks for fuzzing."""

from onespike.sim.check import Mismatch, first_mismatch
from onespike.sim.golden import Trace, closed_form, event_sim, spike_times, synaptic_fanout
from onespike.sim.random_net import random_inputs, random_network

__all__ = ["Trace", "closed_form", "event_sim", "spike_times", "synaptic_fanout",
           "Mismatch", "first_mismatch", "random_network", "random_inputs"]
