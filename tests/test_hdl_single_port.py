"""Single-port membranes (hdl/single_port.py): a paced core is exact against the golden
model under backpressure, idle inputs and a reset in the middle of a sample; a write moved
one cycle early in the RAM's schedule (over the firing read) and a lost bypass of the
integration read are caught; the cycle model follows the pace."""

import numpy as np
import pytest

from onespike.hdl.cycles import cycle_estimate
from onespike.hdl.single_port import PACE, SinglePortMembranes
from onespike.hdl.top import Accelerator, single_port_layers
from onespike.errors import OnespikeError
from onespike.sim import closed_form, first_mismatch
from onespike.sim.hardware import run

from helpers import conv_case, dense_case


def mismatch(net, a0, lanes=1, **kwargs):
    top = Accelerator(net, lanes=lanes, firing="sweep", membranes="single")
    assert any(m == "single" for m in top.membranes)
    hw = run(top, a0, max_cycles=3_000_000, **kwargs)
    return first_mismatch(net, closed_form(net, a0), hw.trace)


@pytest.mark.parametrize("case,lanes", [(dense_case, 1), (dense_case, 3), (conv_case, 2)])
def test_single_port_membranes_are_exact(case, lanes):
    net, a0 = case()
    assert mismatch(net, a0, lanes, backpressure=0.5, idle=0.3, seed=lanes) is None


def test_a_reset_in_the_middle_leaves_nothing_behind():
    net, a0 = dense_case()
    assert mismatch(net, a0, interrupt=(a0[:2], 301)) is None


def test_a_write_one_cycle_early_is_caught(monkeypatch):
    """The RAM writes in the step's second cycle, where the firing read belongs."""
    monkeypatch.setattr(SinglePortMembranes, "_write_phase", lambda self: PACE - 2)
    found = mismatch(*dense_case())
    assert found is not None and found.expected != found.actual


def test_a_lost_write_bypass_is_caught(monkeypatch):
    """The integration read no longer sees the word written in the same step (one state
    word a layer: consecutive spikes add into the same word)."""
    original = SinglePortMembranes.read_port

    def opaque(self, *, transparent_for=()):
        return original(self)
    monkeypatch.setattr(SinglePortMembranes, "read_port", opaque)
    net, a0 = dense_case()
    found = mismatch(net, a0, lanes=max(layer.weight.shape[0] for layer in net.layers))
    assert found is not None and found.expected != found.actual


def test_cycle_model_follows_the_pace():
    net, a0 = dense_case()
    a0 = np.concatenate([a0] * 3)
    maps = [a[1:] for a in closed_form(net, a0).activations[:len(net.layers)]]
    for membranes in ("dual", "single"):
        top = Accelerator(net, lanes=2, firing="sweep", membranes=membranes)
        steady = np.diff(run(top, a0, max_cycles=3_000_000).sample_done)[:-1].mean()
        model = cycle_estimate(top, maps)["steady"]
        assert abs(model / steady - 1) < 0.10, (membranes, model, steady)


def test_what_cannot_be_single_port_is_refused():
    net, _ = dense_case()
    with pytest.raises(OnespikeError, match="single only for hidden"):
        single_port_layers(net, ["single"] * len(net.layers))
    with pytest.raises(OnespikeError, match="sorted firing needs dual-port"):
        Accelerator(net, firing="sorted", membranes="single")
    assert single_port_layers(net, "single") == [not l.is_readout for l in net.layers]
