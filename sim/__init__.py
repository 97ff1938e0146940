"""Golden model (bit-exact reference), trace checker, random networks for fuzzing, and the
rate-coded simulation of the same integer network (for comparison, :mod:`onespike.sim.rate`)."""

from onespike.sim.check import Mismatch, first_mismatch
from onespike.sim.golden import Trace, closed_form, event_sim, spike_times, synaptic_fanout
from onespike.sim.random_net import random_inputs, random_network, random_recurrent_network
from onespike.sim.rate import (RateTrace, guaranteed_exact, rate_quantized, rate_sim,
                               rate_summary, sufficient_correction_steps)

__all__ = ["Trace", "closed_form", "event_sim", "spike_times", "synaptic_fanout",
           "Mismatch", "first_mismatch", "random_network", "random_recurrent_network",
           "random_inputs",
           "RateTrace", "rate_sim", "rate_quantized", "rate_summary",
           "sufficient_correction_steps", "guaranteed_exact"]
