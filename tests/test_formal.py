"""Formal proofs (``onespike prove``): every property passes on the real cores, and each
one fails, with a VCD counterexample, on a planted fault."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from onespike.ir import Conv, Dense, Encoder, MaxPool, Network, Recurrent, save
from onespike.sim.faults import FAULTS, planted
from onespike.sim.formal import PROPERTIES, Harness, prove, run_check, targets, tool_env


def _tiny():
    """2 inputs (A0 = 3) → dense 2 (A = 1) → readout 3. Negative weights into hidden neuron
    1 drive its membrane ``U = V − A·R`` to the IR's bound (−18), and positive weights into
    readout neuron 1 its logit, so one bit less overflows; 3 classes leave a class index (3)
    that is out of range."""
    enc = Encoder(shape=(2,), act_bits=2, scale=np.ones(1), offset=np.zeros(1))
    hidden = Dense(in_shape=(2,), weight=np.array([[3, 2], [-3, -2]]), bias=np.array([1, -1]),
                   ramp=np.array([2, 2]), act_bits=1, scale=1.0, pool=1)
    readout = Dense(in_shape=(2,), weight=np.array([[2, 1], [1, 2], [-1, 1]]),
                    bias=np.array([0, 1, -2]), ramp=None, act_bits=None, scale=1.0, pool=1)
    return Network(enc, (hidden, readout))


def _image():
    """1×3×3 input (A0 = 1) → conv 2×2 (2 channels) → max-pool 2, stride 1 → readout 2."""
    enc = Encoder(shape=(1, 3, 3), act_bits=1, scale=np.ones(1), offset=np.zeros(1))
    conv = Conv(in_shape=(1, 3, 3), weight=np.array([[[[1, 2], [-1, 1]]], [[[2, -1], [1, 1]]]]),
                bias=np.array([0, -1]), ramp=np.array([1, 2]), act_bits=1, scale=1.0, pool=1,
                stride=1, padding=0)
    pool = MaxPool(in_shape=(2, 2, 2), kernel=2, stride=1, padding=0)
    readout = Dense(in_shape=(2, 1, 1), weight=np.array([[1, -1], [2, 1]]),
                    bias=np.array([0, 1]), ramp=None, act_bits=None, scale=1.0, pool=1)
    return Network(enc, (conv, pool, readout))


@pytest.fixture(scope="module")
def tools():
    try:
        tool_env()
    except Exception as e:                        # noqa: BLE001 - missing tools skip
        pytest.skip(str(e))


def _target(net, prefix):
    return next(t for t in targets(net) if t.name.split()[0] == prefix)


def _check(tmp_path, net, core, prop, fault=None):
    target, wrap = _target(net, core), None
    if fault:
        target, wrap = planted(target, fault)
    induction = fault is None and prop in ("reset", "stable")
    return run_check(Harness(target, prop, wrap), tmp_path / f"{core}_{prop}", target.depth,
                     induction=induction)


def test_every_core_has_its_properties():
    names = {t.name: t.properties for t in targets(_image(), lanes=2)}
    assert list(names) == ["encoder", "layer0 (conv)", "layer1 (maxpool)",
                           "layer2 (dense, readout)", "argmax"]
    assert {"once", "markers", "steps", "window", "conserve"} <= set(names["encoder"])
    assert {"widths", "once", "markers"} <= set(names["layer0 (conv)"])
    assert {"widths", "logits"} <= set(names["layer2 (dense, readout)"])
    assert set().union(*names.values()) == set(PROPERTIES)


CAUGHT = [  # (core, property, fault): each property fails on a planted fault
    ("encoder", "stable", "unstable"),
    ("encoder", "conserve", "drop_spike"),
    ("encoder", "markers", "drop_end"),
    ("encoder", "once", "dup"),
    ("encoder", "window", "bump"),
    ("encoder", "steps", "bump"),
    ("encoder", "samples", "spurious"),
    ("encoder", "reset", "slow_reset"),
    ("layer0", "widths", "narrow_membrane"),
    ("layer1", "logits", "bump"),
    ("argmax", "classes", "bump"),
]

CAUGHT_SLOW = [
    ("layer0", "widths", "drop_spike"),           # a lost spike: the lockstep copy differs
    ("layer0", "once", "dup"),
    ("layer0", "stable", "unstable"),
    ("layer0", "samples", "spurious"),
    ("layer0", "reset", "slow_reset"),
    ("layer1", "widths", "narrow_membrane"),
    ("argmax", "samples", "spurious"),
    ("argmax", "stable", "unstable"),
]


@pytest.mark.parametrize("core, prop, fault", CAUGHT)
def test_planted_fault_is_caught(tools, tmp_path, core, prop, fault):
    result = _check(tmp_path, _tiny(), core, prop, fault)
    assert result["status"] == "failed", result
    assert result["trace"] and result["trace"].endswith(".vcd")
    assert "$var" in Path(result["trace"]).read_text()


@pytest.mark.slow
@pytest.mark.parametrize("core, prop, fault", CAUGHT_SLOW)
def test_planted_fault_is_caught_everywhere(tools, tmp_path, core, prop, fault):
    result = _check(tmp_path, _tiny(), core, prop, fault)
    assert result["status"] == "failed", result


def test_every_fault_is_planted_in_a_test():
    assert {fault for _, _, fault in CAUGHT + CAUGHT_SLOW} == set(FAULTS)
    assert {prop for _, prop, _ in CAUGHT} == set(PROPERTIES)


def test_prove_cli_json(tools, tmp_path, capsys):
    """The CLI on a small network (the cheaper properties; the whole run is slow)."""
    from onespike.cli import main

    path = save(_tiny(), tmp_path / "tiny.npz")
    argv = ["prove", str(path), "--json", "--out", str(tmp_path / "prove"), "--jobs", "2",
            "--only", "encoder:reset", "--only", "encoder:stable", "--only", "layer0:once",
            "--only", "layer1:stable", "--only", "argmax:classes"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"properties", "proven", "bounded", "failed"} <= set(result)
    assert result["failed"] == 0 and result["errors"] == 0
    assert len(result["properties"]) == 5
    by = {(r["core"].split()[0], r["property"]): r for r in result["properties"]}
    assert by["encoder", "stable"]["status"] == "proven"
    assert by["layer0", "once"]["status"] in ("proven", "bounded")


@pytest.mark.slow
@pytest.mark.parametrize("lanes", [1, 2])
def test_prove_whole_network(tools, tmp_path, lanes):
    result = prove(_tiny(), lanes=lanes, out=tmp_path, jobs=2)
    assert result["failed"] == 0 and result["errors"] == 0, \
        [r for r in result["properties"] if r["status"] not in ("proven", "bounded")]
    assert result["proven"] + result["bounded"] == result["checks"]
    assert {r["property"] for r in result["properties"] if r["status"] == "proven"} == \
        {"reset", "stable"}


@pytest.mark.slow
def test_prove_image_network(tools, tmp_path):
    result = prove(_image(), lanes=2, out=tmp_path, jobs=2)
    bad = {(r["core"], r["property"]) for r in result["properties"]
           if r["status"] not in ("proven", "bounded")}
    assert bad <= {("encoder", "stable")}         # the known defect below


def test_encoder_image_markers_hold_their_index(tools, tmp_path):
    """Found by this proof: an image encoder's end-of-step marker once carried {x, y, c}
    read from its coordinate memory out of range, changing under backpressure; markers now
    carry index 0."""
    result = _check(tmp_path, _image(), "encoder", "stable")
    assert result["status"] in ("proven", "bounded"), result.get("trace")


def test_prove_rejects_bad_depth(tmp_path):
    from onespike.errors import OnespikeError

    with pytest.raises(OnespikeError, match="depth"):
        prove(_tiny(), depth=0, out=tmp_path)


def _sorted_target():
    """The conv layer of :func:`_image` with 2-bit activations (3 steps), sorted firing."""
    net = _image()
    conv = dataclasses.replace(net.layers[0], act_bits=2)
    net = Network(net.encoder, (conv,) + net.layers[1:])
    return next(t for t in targets(net, lanes=2, firing="sorted")
                if t.name == "layer0 (conv, sorted)")


@pytest.mark.slow
@pytest.mark.parametrize("prop", ["reset", "stable", "once", "markers", "steps", "window",
                                  "samples", "widths"])
def test_a_sorted_core_has_its_properties(tools, tmp_path, prop):
    target = _sorted_target()
    assert prop in target.properties
    # bounded at 48 cycles (a reset, a sample integrated and sent); the core's own depth
    # (91) takes yices tens of minutes on the list memories
    result = run_check(Harness(target, prop), tmp_path / prop, min(target.depth, 48),
                       induction=prop in ("reset", "stable"))
    assert result["status"] in ("proven", "bounded"), result


@pytest.mark.parametrize("prop, fault", [
    ("once", "dup"), pytest.param("stable", "unstable", marks=pytest.mark.slow),
    pytest.param("reset", "slow_reset", marks=pytest.mark.slow)])
def test_a_fault_in_a_sorted_core_is_caught(tools, tmp_path, prop, fault):
    target, wrap = planted(_sorted_target(), fault)
    result = run_check(Harness(target, prop, wrap), tmp_path / prop, target.depth,
                       induction=False)
    assert result["status"] == "failed", result


def _recurrent():
    """2 inputs (A0 = 1) over 2 steps → recurrent 2 (A = 1, ``W_h`` with both signs) →
    readout 2: the loop-back's merge, tee and sequence counters in the smallest core."""
    enc = Encoder(shape=(2,), act_bits=1, scale=np.ones(1), offset=np.zeros(1), steps=2)
    rnn = Recurrent(in_shape=(2,), weight=np.array([[2, -1], [1, 1]]),
                    recurrent=np.array([[1, -2], [2, 1]]), bias=np.array([0, -1]),
                    ramp=np.array([2, 2]), act_bits=1, scale=1.0)
    readout = Dense(in_shape=(2,), weight=np.array([[1, -1], [2, 1]]), bias=np.array([0, 1]),
                    ramp=None, act_bits=None, scale=1.0, pool=1)
    return Network(enc, (rnn, readout))


def test_a_recurrent_core_has_the_spike_properties():
    target = _target(_recurrent(), "layer0")
    assert target.name == "layer0 (recurrent)" and target.i_windows == 2
    assert target.o_windows == 1                  # only the last step reaches the readout
    assert set(target.properties) == {"reset", "stable", "steps", "markers", "window", "once",
                                      "samples", "widths"}


@pytest.mark.parametrize("prop", ["reset", "stable", "markers", "window",
                                  pytest.param("once", marks=pytest.mark.slow),     # 50 s
                                  pytest.param("samples", marks=pytest.mark.slow),  # 12 min
                                  pytest.param("widths", marks=pytest.mark.slow)])
def test_recurrent_core_properties(tools, tmp_path, prop):
    result = _check(tmp_path, _recurrent(), "layer0", prop)
    assert result["status"] in ("proven", "bounded"), result


@pytest.mark.parametrize("prop, fault", [
    ("once", "dup"), ("samples", "spurious"),
    pytest.param("widths", "narrow_membrane", marks=pytest.mark.slow)])  # > 10 min
def test_a_fault_in_a_recurrent_core_is_caught(tools, tmp_path, prop, fault):
    result = _check(tmp_path, _recurrent(), "layer0", prop, fault)
    assert result["status"] == "failed", result
