"""The lean neuron core's own paths, each shown to be checked: a planted fault in the packed
constants (ramp, U0), in the synapse ranges of a convolution (a skipped state word) and in
the integrated multiple ``A_in − s`` must make the RTL differ from the golden model."""

import numpy as np
import pytest
from amaranth.hdl import Mux

from onespike.hdl.conv import ConvCore
from onespike.hdl.core import NeuronCore, NeuronSizes
from onespike.hdl.cycles import cycle_estimate
from onespike.sim.hardware import run
from onespike.hdl.top import Accelerator
from onespike.ir import Conv
from onespike.sim import closed_form, first_mismatch

from helpers import conv_case, dense_case


def caught(net, a0, lanes=1):
    hw = run(Accelerator(net, lanes=lanes), a0, max_cycles=400_000)
    mismatch = first_mismatch(net, closed_form(net, a0), hw.trace)
    return mismatch is not None and mismatch.expected != mismatch.actual


@pytest.mark.parametrize("case", [dense_case, conv_case])
def test_the_unfaulted_core_is_exact(case):
    net, a0 = case()
    assert not caught(net, a0)


def test_a_wrong_ramp_constant_is_caught(monkeypatch):
    original = NeuronSizes._constant_words

    def wrong(self):
        u0, ramp = original(self)
        return u0, np.where(ramp > 0, ramp + 1, 0)
    monkeypatch.setattr(NeuronSizes, "_constant_words", wrong)
    assert caught(*dense_case())


def test_a_wrong_start_value_is_caught(monkeypatch):
    original = NeuronSizes._constant_words

    def wrong(self):
        u0, ramp = original(self)
        return u0 + ramp, ramp          # bias − (A−1)·R: one step early
    monkeypatch.setattr(NeuronSizes, "_constant_words", wrong)
    assert caught(*dense_case())


def test_a_skipped_state_word_is_caught(monkeypatch):
    original = ConvCore.synapse_bounds

    def short(self, index):
        bounds, exists = original(self, index)
        (y0, y1), rest = bounds[0], bounds[1:]
        return [(y0, Mux(y1 > y0, y1 - 1, y1))] + rest, exists
    monkeypatch.setattr(ConvCore, "synapse_bounds", short)
    assert caught(*conv_case())


def test_a_wrong_multiple_is_caught(monkeypatch):
    """The fault: a spike of step ``s`` integrates as if it came one step later."""
    monkeypatch.setattr(NeuronCore, "_spike_multiple",
                        lambda self, step: self._in_levels - step - 1)
    assert caught(*dense_case())


def test_cycle_model_within_ten_percent():
    """The samples three times over, so that the pipeline reaches its steady state; the
    last sample (nothing behind it) is left out of the measure."""
    net, a0 = conv_case()
    a0 = np.concatenate([a0] * 3)
    golden = closed_form(net, a0)
    for lanes in (1, 2):
        for firing in ("sweep", "sorted"):
            top = Accelerator(net, lanes=lanes, firing=firing)
            hw = run(top, a0, max_cycles=400_000)
            steady = np.diff(hw.sample_done)[:-1].mean()
            maps = [a[1:] for a in golden.activations[:len(net.layers)]]
            model = cycle_estimate(top, maps)["steady"]
            assert abs(model / steady - 1) < 0.10, (lanes, firing, model, steady)
