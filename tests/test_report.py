"""`onespike report` and `onespike demo`: the files are written and refer to each other, the
numbers follow from the network, and bad arguments get one clear line."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from onespike.cli import main
from onespike.ir import save
from onespike.report import operations, write_report
from onespike.sim import closed_form, random_inputs, random_network


def figures_referenced(report: Path) -> set:
    return set(re.findall(r"!\[[^\]]*\]\((figures/[^)]+)\)", report.read_text()))


def test_report_and_its_figures_refer_to_each_other(tmp_path, digits_mlp_net):
    net, data = digits_mlp_net
    result = write_report(net, tmp_path / "r", x=data.x_test[:40], labels=data.y_test[:40],
                          float_accuracy=0.5, lanes=8, measure=2)
    report = Path(result["report"])
    written = {str(Path(f).relative_to(report.parent)) for f in result["figures"]}
    assert written == figures_referenced(report) and len(written) >= 3
    for figure in written:
        assert (report.parent / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = report.read_text()
    assert result["quantized_accuracy"] == result["spiking_accuracy"]
    assert f"{result['spiking_accuracy']:.4f}" in text and "0.5000" in text
    assert "An estimate, not a measurement" in text and "Horowitz" in text
    assert not list((tmp_path / "r").glob(".report-*"))      # no staging folder left


def test_operation_counts_follow_the_activations():
    """TTFS additions equal zero-skipping MACs (a spike is a non-zero activation), and both
    equal the fan-out of the non-zero inputs counted by hand for a dense layer."""
    rng = np.random.default_rng(3)
    net = random_network(rng, conv=False, max_layers=2)
    a0 = random_inputs(rng, net, 5)
    trace = closed_form(net, a0)
    ops = operations(net, trace)
    assert ops["ttfs_additions"] == ops["dense_macs_skip"]
    by_hand = sum(int((np.asarray(trace.activations[n]) > 0).sum()) * layer.weight.shape[0]
                  for n, layer in enumerate(net.layers)) / 5
    assert ops["dense_macs_skip"] == by_hand
    assert ops["dense_macs"] == sum(int(np.prod(l.in_shape)) * l.weight.shape[0]
                                    for l in net.layers)


def test_measured_cycles_come_from_the_simulator(tmp_path):
    rng = np.random.default_rng(4)
    net = random_network(rng, conv=True)
    result = write_report(net, tmp_path / "r", lanes=2, measure=3)
    cycles = result["cycles"]
    assert cycles["measured_samples"] == 3 and cycles["measured_steady"] > 0
    assert cycles["event_bound_steady"] <= cycles["event_bound_alone"]


@pytest.mark.parametrize("extra, message", [
    (["--build", "no/such/folder"], "holds no build.json"),
    (["--inputs", "WRONG"], "per sample, the network expects"),
    (["--labels", "LABELS"], "--labels needs --inputs"),
])
def test_bad_report_arguments_get_one_line(tmp_path, capsys, extra, message):
    rng = np.random.default_rng(5)
    net = random_network(rng, conv=False, max_layers=2)
    save(net, tmp_path / "net.npz")
    np.save(tmp_path / "wrong.npy", np.zeros((3, int(np.prod(net.encoder.shape)) + 1)))
    np.save(tmp_path / "labels.npy", np.zeros(3, dtype=np.int64))
    extra = [str(tmp_path / "wrong.npy") if e == "WRONG" else
             str(tmp_path / "labels.npy") if e == "LABELS" else e for e in extra]
    status = main(["report", str(tmp_path / "net.npz"), *extra, "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert status == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "r" / "report.md").exists()


def test_demo_runs_the_main_job(tmp_path, capsys, torch):
    """The README's first command: train, convert, verify 50 images in RTL, report."""
    status = main(["demo", "--out", str(tmp_path / "demo"), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert status == 0
    assert result["rtl_samples"] == 50 and result["rtl_mismatches"] == 0
    assert result["spiking_accuracy"] == result["quantized_accuracy"]
    assert result["float_accuracy"] > 0.9
    assert Path(result["report"]).is_file() and figures_referenced(Path(result["report"]))


def test_rnn_demo_checks_its_rtl_at_every_step(tmp_path, torch):
    """``demo --rnn`` on a small, briefly trained RNN: the golden model, rate coding and
    the RTL at every sequence step agree."""
    from onespike.demo import run_rnn_demo

    result, lines = run_rnn_demo(tmp_path / "rnn", hidden=8, epochs=(3, 3), rtl_samples=4,
                                 progress=False)
    assert result["rtl_samples"] == 4 and result["rtl_mismatches"] == 0
    # per sequence: the input at each of 8 steps (8 pixels), the state that reaches the
    # readout (8), 10 logits and the class; 4 test sequences and 2 edge cases
    assert result["rtl_values_compared"] == (4 + 2) * (8 * 8 + 8 + 10 + 1)
    assert result["spiking_accuracy"] == result["quantized_accuracy"]
    assert result["rate_bipolar_accuracy"] == result["quantized_accuracy"]
    assert any("0 mismatches" in line for line in lines)
