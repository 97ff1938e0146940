"""Sorted firing (hdl/firing.py): the reciprocal rule against the ramp, each sorted core on
its own and in whole accelerators against the golden model, a reset in the middle, the
``auto`` choice, and a planted fault in each of its paths."""

import numpy as np
import pytest
from amaranth.hdl import Mux

from onespike.errors import OnespikeError
from onespike.hdl import firing
from onespike.hdl.firing import Reciprocals, sorting_pays
from onespike.hdl.streams import discard
from onespike.hdl.cycles import cycle_estimate
from onespike.hdl.top import Accelerator
from onespike.hdl.plan import SORT_GAIN, SPIKE_SHARE, choose_firing
from onespike.ir import Conv
from onespike.sim import closed_form, first_mismatch, random_inputs, random_network
from onespike.sim.hardware import run

from helpers import (CONV_NETS, FLOWS, check_layer, conv_net_and_rng, lane_counts,
                     layer_core, networks_with)


def ramp_step(u, r, levels):
    """The golden rule: the first step ``k < A`` with ``U + k·R ≥ 0`` (None: no spike)."""
    return next((k for k in range(levels) if u + k * r >= 0), None)


@pytest.mark.parametrize("levels", [1, 2, 3, 7, 15])
def test_the_reciprocal_gives_the_ramps_step_for_every_membrane(levels):
    ramps = np.array([1, 2, 3, 5, 7, 64, 171, 479, 526])
    recip = Reciprocals(ramps, levels)
    for r, m in zip(ramps, recip.of(ramps)):
        for u in range(-(levels + 2) * int(ramps.max()) - 3, 4):
            assert recip.firing_step(u, int(m)) == ramp_step(u, int(r), levels), (u, r)
    assert recip.firing_step(-1, 0) is None and recip.firing_step(0, 0) is None  # padding


def test_a_reciprocal_one_short_is_wrong_somewhere():
    """The bound ``s = w + bits(R_max)`` is what makes the rule exact: with ``m − 1`` (the
    reciprocal rounded down) some membrane gets the wrong step."""
    ramps = np.array([3, 7, 171, 479])
    recip = Reciprocals(ramps, 15)
    wrong = [(u, r) for r, m in zip(ramps, recip.of(ramps) - 1)
             for u in range(-16 * int(ramps.max()), 1)
             if recip.firing_step(u, int(m)) != ramp_step(u, int(r), 15)]
    assert wrong


def hidden(layer):
    return not layer.is_readout and layer.kind in ("conv", "dense")


# hidden layers of random networks: convolutions and dense layers, 1-3 activation bits
LAYERS = networks_with(3, conv=True, where=lambda l: hidden(l) and isinstance(l, Conv),
                       samples=2, seed=3) + \
    networks_with(2, conv=False, where=hidden, samples=3, seed=5)
CASES = [(number, lanes) for number, (net, n, _) in enumerate(LAYERS)
         for lanes in lane_counts(net.layers[n])]


@pytest.mark.parametrize("idle, backpressure", FLOWS[::3])
@pytest.mark.parametrize("number, lanes", CASES)
def test_a_sorted_core_against_golden(number, lanes, idle, backpressure):
    net, n, a0 = LAYERS[number]
    core = layer_core(net, n, lanes=lanes, sorted_firing=True)
    assert core.sorted_firing
    mismatch = check_layer(core, net, n, a0, idle=idle, backpressure=backpressure,
                           seed=number)
    assert mismatch is None, mismatch


@pytest.mark.parametrize("number", [k for k, net in enumerate(CONV_NETS)
                                    if any(hidden(l) for l in net.layers)])
def test_sorted_accelerators_spike_for_spike(number):
    net, rng = conv_net_and_rng(number)
    a0 = random_inputs(rng, net, 2)
    golden = closed_form(net, a0)
    widest = max(l.out_shape[0] for l in net.layers if hidden(l) or l.is_readout)
    top = Accelerator(net, lanes=min(1 + number % 3, widest), use_dsp=number % 4 == 0,
                      firing="sorted")
    assert "sorted" in top.firing
    hw = run(top, a0, idle=0.2, backpressure=0.3, seed=number, max_cycles=400_000)
    assert first_mismatch(net, golden, hw.trace) is None


def test_a_reset_in_the_middle_of_sorting_or_sending():
    net, rng = conv_net_and_rng(0)
    junk, a0 = random_inputs(rng, net, 2), random_inputs(rng, net, 2)
    for cycles in (20, 150, 400):
        hw = run(Accelerator(net, lanes=2, firing="sorted"), a0, interrupt=(junk, cycles),
                 max_cycles=400_000)
        assert first_mismatch(net, closed_form(net, a0), hw.trace) is None, cycles


def test_auto_sorts_where_the_sweep_limits_the_pipeline():
    """``auto`` (hdl.top.choose_firing): a sorted layer is one that sorting makes faster,
    and the model's cycles per sample drop by at least SORT_GAIN; some random
    networks sort a layer, some do not."""
    chose = []
    for net in CONV_NETS + [random_network(np.random.default_rng(s)) for s in range(4)]:
        chosen = choose_firing(net, 1)
        sweep = discard(Accelerator(net, lanes=1, firing="sweep"))
        auto = discard(Accelerator(net, lanes=1))
        assert list(auto.firing) == [c if f else None for c, f in zip(chosen, auto.firing)]
        sizes = [int(np.prod(net.encoder.shape))] + [int(np.prod(l.out_shape))
                                                      for l in net.layers]
        spikes = [SPIKE_SHARE * n for n in sizes[:-1]]
        before, after = (cycle_estimate(t, spikes)["steady"] for t in (sweep, auto))
        sorted_layers = [n for n, c in enumerate(chosen) if c == "sorted"]
        assert all(sorting_pays(net.layers[n], 1) for n in sorted_layers)
        assert after <= before * (1 - SORT_GAIN) if sorted_layers else after == before
        chose.append(bool(sorted_layers))
    assert any(chose) and not all(chose)


def test_firing_choices_are_checked():
    net = next(net for net in CONV_NETS if any(hidden(l) for l in net.layers))
    with pytest.raises(OnespikeError, match="firing must be one of auto, sweep, sorted"):
        Accelerator(net, firing="fast")
    with pytest.raises(OnespikeError, match="sweep or sorted for each of the"):
        Accelerator(net, firing=["sorted"])
    per_layer = ["sorted" if hidden(l) else "sweep" for l in net.layers]
    top = discard(Accelerator(net, firing=per_layer))
    assert [f for f in top.firing if f] == ["sorted"] * sum(hidden(l) for l in net.layers)


# -- planted faults: each path of sorted firing, shown to be checked ------------------------

# a convolution with 5 channels, 3x5 positions and 7 steps, at 2 lanes (a part-filled group)
FAULT_LAYER = networks_with(
    1, conv=True, samples=2, seed=0, where=lambda l: hidden(l) and isinstance(l, Conv)
    and l.levels >= 7 and l.out_shape[0] >= 5 and l.out_shape[1] * l.out_shape[2] >= 8)[0]


def sorted_caught():
    net, n, a0 = FAULT_LAYER
    core = layer_core(net, n, lanes=2, sorted_firing=True)
    # a broken list can loop: the run stops after a bounded number of cycles
    return check_layer(core, net, n, a0, idle=0.2, backpressure=0.3,
                       max_cycles=5_000) is not None


def test_the_unfaulted_layer_passes():
    assert not sorted_caught()


def test_a_wrong_reciprocal_is_caught(monkeypatch):
    """The constants hold the reciprocal of ``2·R``. (A reciprocal a little off changes
    only membranes near a multiple of ``R``: the formula's own test above covers that.)"""
    original = Reciprocals.of
    monkeypatch.setattr(Reciprocals, "of", lambda self, ramps: original(self, 2 * ramps))
    assert sorted_caught()


def test_a_step_one_early_is_caught(monkeypatch):
    """``floor((D − 1)/R)`` taken as the step, not ``+ 1``."""
    original = firing._fire_step

    def early(*args):
        product, steps = original(*args)
        return product, [(Mux(step > 0, step - 1, 0), fires) for step, fires in steps]
    monkeypatch.setattr(firing, "_fire_step", early)
    assert sorted_caught()


def test_a_wrong_list_position_is_caught(monkeypatch):
    """The pass files every word under the counters of the word before it."""
    class Late(firing.Odometer):
        def step(self, m):
            m.d.sync += [v.eq(n) for v, n in zip(self.values, self.next_values())]
            m.d.sync += self.values[-1].eq(self.values[-1])
    monkeypatch.setattr(firing, "Odometer", Late)
    assert sorted_caught()


@pytest.mark.parametrize("sorted_firing", [False, True])
def test_the_closed_form_and_the_replay_time_phase_two_alike(sorted_firing):
    """One timing description (FiringTiming): the event replay of a core's firing into a
    consumer that never waits takes exactly the closed form's cycles, for random state
    word counts, windows and spikes."""
    from onespike.hdl.cycles import _chain, _stream_steps
    from onespike.hdl.firing import firing_cycles

    class Instant:
        done = 0

        def take(self, t, spike):
            self.done = t + 1
            return t + 1

    rng = np.random.default_rng(int(sorted_firing))
    for _ in range(50):
        lanes, groups, levels = (int(v) for v in rng.integers(1, 6, 3))
        act = rng.integers(0, levels + 1, lanes * groups)
        steps = _stream_steps(levels, act, (lanes * groups,), lanes, sorted_firing)
        spikes = int((act > 0).sum())
        replay = _chain(steps, groups, Instant(), lists=sorted_firing)
        assert replay == firing_cycles(groups, levels, spikes, sorted_firing), \
            (lanes, groups, levels, act)
