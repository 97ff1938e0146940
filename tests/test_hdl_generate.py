"""Generated Verilog: reproducible, lint-clean under Verilator, accepted by Icarus."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from onespike.cli import main
from onespike.ir import save
from onespike.sim import random_network
from onespike.sim.verify import VERILATOR_ARGS

# the only Verilator warning classes waived, shared with `onespike verify`
LINT = ["--lint-only", *VERILATOR_ARGS]


@pytest.fixture(scope="module")
def net_file(tmp_path_factory):
    net = random_network(np.random.default_rng(21), conv=False, max_layers=3)
    return save(net, tmp_path_factory.mktemp("gen") / "net.npz")


def generate(capsys, net_file, out, *extra):
    code = main(["generate", str(net_file), "-o", str(out), "--json", *extra])
    out_text, err = capsys.readouterr()
    return code, out_text, err


def test_generate_is_reproducible_and_described(capsys, net_file, tmp_path):
    code, out, _ = generate(capsys, net_file, tmp_path / "a", "--lanes", "2")
    assert code == 0
    result = json.loads(out)
    verilog = tmp_path / "a" / "onespike_top.v"
    assert result["verilog"] == [str(verilog)]
    assert generate(capsys, net_file, tmp_path / "b", "--lanes", "2")[0] == 0
    assert verilog.read_bytes() == (tmp_path / "b" / "onespike_top.v").read_bytes()
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    text = verilog.read_text()
    assert "module onespike_top" in text
    for port in manifest["ports"]:
        assert port["name"] in text and port["meaning"]
        if "fields" in port:   # the fields tile the payload exactly
            spans = sorted((f["offset"], f["width"]) for f in port["fields"].values())
            assert spans[0][0] == 0 and sum(w for _, w in spans) == port["width"]
            assert all(a + w == b for (a, w), (b, _) in zip(spans, spans[1:]))
    assert result["cycles"] == manifest["cycles"]["every_neuron_spiking"]
    assert result["cycles"]["steady"] == max(result["cycles"]["stages"].values())


@pytest.fixture(scope="module")
def conv_net_file(tmp_path_factory):
    """A network with every core: conv (stride 2 on an axis, padding), max-pool."""
    rng = np.random.default_rng(57)
    net = random_network(rng, conv=True, act_bits=2)
    while {l.kind for l in net.layers} != {"conv", "maxpool", "dense"} or \
            net.layers[-1].kind != "dense" or \
            max(l.weight.shape[0] for l in net.layers if l.kind != "maxpool") < 3 or \
            not any(l.kind == "conv" and 2 in l.stride and any(l.padding) for l in net.layers):
        net = random_network(rng, conv=True, act_bits=2)
    return save(net, tmp_path_factory.mktemp("gen") / "conv.npz")


@pytest.mark.skipif(shutil.which("verilator") is None, reason="verilator not installed")
@pytest.mark.parametrize("which", ["net_file", "conv_net_file"])
def test_verilator_lint(which, capsys, tmp_path, request):
    assert generate(capsys, request.getfixturevalue(which), tmp_path, "--lanes", "3")[0] == 0
    result = subprocess.run(["verilator", *LINT, str(tmp_path / "onespike_top.v")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[:2000]


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")
def test_icarus_accepts(capsys, net_file, tmp_path):
    assert generate(capsys, net_file, tmp_path)[0] == 0
    result = subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "a.out"),
                             str(tmp_path / "onespike_top.v")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[:2000]


def test_bad_lanes_clear_error(capsys, net_file, tmp_path):
    code, out, err = generate(capsys, net_file, tmp_path / "x", "--lanes", "0")
    assert code != 0 and out == "" and "lane count must be a positive integer" in err
    assert not (tmp_path / "x" / "onespike_top.v").exists()


def firings(manifest):
    return [layer["firing"] for layer in manifest["layers"]]


def test_manifest_records_each_layers_firing(capsys, conv_net_file, net_file, tmp_path):
    """``auto`` sorts the layers :func:`choose_firing` picks; ``--firing sweep`` or
    ``sorted`` applies to every hidden layer; the readout and max pooling have no firing
    phase (null). The --json result carries the same list."""
    from onespike.hdl.plan import choose_firing
    from onespike.ir import load

    net = load(conv_net_file)
    expected = [None if layer.kind == "maxpool" or layer.is_readout else choice
                for layer, choice in zip(net.layers, choose_firing(net, 1))]
    assert "sweep" in expected and None in expected
    for firing, want in [(None, expected), ("sweep", [f and "sweep" for f in expected]),
                         ("sorted", [f and "sorted" for f in expected])]:
        out = tmp_path / str(firing)
        code, text, _ = generate(capsys, conv_net_file, out,
                                 *(["--firing", firing] if firing else []))
        assert code == 0
        assert firings(json.loads((out / "manifest.json").read_text())) == want
        assert json.loads(text)["firing"] == want
    code, text, _ = generate(capsys, net_file, tmp_path / "dense", "--firing", "sorted")
    assert code == 0 and json.loads(text)["firing"] == ["sorted", None]


def test_a_wrong_firing_is_one_clear_error(tmp_path):
    from onespike.errors import OnespikeError
    from onespike.hdl.generate import generate as generate_rtl

    net = random_network(np.random.default_rng(21), conv=False, max_layers=3)
    with pytest.raises(OnespikeError, match="firing must be one of auto, sweep, sorted, not "
                                            "'fast'"):
        generate_rtl(net, tmp_path / "a", firing="fast")
    with pytest.raises(OnespikeError, match="firing 'sweep' applies to the ttfs coding only"):
        generate_rtl(net, tmp_path / "b", coding="dense", firing="sweep")
    assert not list(tmp_path.iterdir())
    dense = generate_rtl(net, tmp_path / "c", coding="dense")     # auto: no firing phase
    assert "firing" not in dense["layers"][0]


def test_port_meanings_are_enough_to_drive_the_top(capsys, conv_net_file, tmp_path):
    """What a testbench writer needs from manifest.json alone (as in the README): the input
    order and range, what a marker's index and step hold, the reset bound of i__ready."""
    assert generate(capsys, conv_net_file, tmp_path)[0] == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    meaning = {port["name"]: " ".join(port["meaning"].split()) for port in manifest["ports"]}
    for part in ("i__payload", "i__valid", "i__ready"):
        assert "(c, y, x) with x fastest, then y, then c" in meaning[part]
        assert "activations 0..A0 (A0 = input_levels)" in meaning[part]
        assert "After rst, i__ready stays low for at most A0 + 2 cycles" in meaning[part]
    assert manifest["input_levels"] == manifest["layers"][0]["input_window"][1] - \
        manifest["layers"][0]["input_window"][0]
    assert "i__ready" in meaning["rst"]
    for n in range(len(manifest["layers"])):
        tap = meaning[f"tap_{n}__payload"]
        assert f"into layer {n}" in tap and f"of layers[{n}]" in tap
        assert "a marker's step is the step it closes (A - 1 ends the sample)" in tap
        assert "its index is 0" in tap and "never X" in tap


def test_the_interface_document_says_what_the_manifest_says():
    """docs/accelerator.md's ports are :func:`interface_markdown`, the manifest's own port
    text (regenerate with ``make docs``), and name every port group a top has."""
    from pathlib import Path

    from onespike.hdl.generate import PORT_MEANING, interface_markdown

    text = (Path(__file__).parent.parent / "docs" / "accelerator.md").read_text()
    begin = text.index("-->\n", text.index("<!-- generated by")) + 4
    assert text[begin:text.index("<!-- end of the generated part -->")] == \
        interface_markdown(), "docs/accelerator.md is stale: run `make docs`"
    for coding in ("ttfs", "dense"):
        assert f"### Ports, `{coding}` coding" in text
    assert all(" ".join(PORT_MEANING[p].split()[:6]) in text for p in ("clk", "rst", "o"))
