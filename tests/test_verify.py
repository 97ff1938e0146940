"""cocotb regression of the generated Verilog (Icarus and Verilator) against the golden model."""

import dataclasses
import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from helpers import conv_net_and_rng
from onespike.cli import main
from onespike.errors import OnespikeError
from onespike.hdl.generate import generate
from onespike.ir import Dense, Encoder, Network, save
from onespike.sim import (closed_form, random_inputs, random_network,
                          random_recurrent_network)
from onespike.sim.verify import shard_slices, stimulus, verify

SIMULATORS = ["icarus", "verilator"]


@pytest.fixture(scope="module")
def build_root(tmp_path_factory):
    return tmp_path_factory.mktemp("verify")


def expected_comparisons(net, samples):
    """Every neuron of every spike stream (at every step of a sequence where the stream
    runs per step), every logit and the class, for every sample."""
    streams = [int(np.prod(layer.in_shape)) * (net.steps if net.per_step(n) else 1)
               for n, layer in enumerate(net.layers)]
    return samples * (sum(streams) + net.num_classes + 1)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_trained_digits_mlp(simulator, digits_mlp_net, build_root):
    net, data = digits_mlp_net
    a0 = stimulus(net, data.x_test[:38])
    result = verify(net, a0, lanes=8, simulator=simulator, build_root=build_root,
                    progress=False)
    assert result["mismatches"] == 0, result["first_mismatch"]
    assert result["samples"] == 40
    assert result["values_compared"] == expected_comparisons(net, 40)
    assert result["cycles_per_inference"] > 0


@pytest.mark.parametrize("seed", range(4))
def test_random_dense_networks(seed, build_root):
    rng = np.random.default_rng(100 + seed)
    net = random_network(rng, conv=False, act_bits=int(rng.integers(1, 5)))
    largest = max(layer.weight.shape[0] for layer in net.layers)
    a0 = random_inputs(rng, net, 6)
    lanes = min([1, 3, largest, 2][seed], largest)
    result = verify(net, a0, lanes=lanes, build_root=build_root, seed=seed, progress=False)
    assert result["mismatches"] == 0, result["first_mismatch"]


def edge_case_network():
    """Hidden layer 0: neuron 0 never crosses, neurons 1..3 all fire at once in step 0
    whatever the input, neuron 4 follows input 0; readout: classes 0 and 1 tie always."""
    levels = 7
    encoder = Encoder(shape=(3,), act_bits=3, scale=np.ones(1), offset=np.zeros(1))
    ramp = np.array([2, 3, 3, 3, 1])
    hidden = Dense(in_shape=(3,), weight=np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0],
                                                   [0, 0, 0], [1, 0, 0]]),
                   bias=np.array([-100, 21, 21, 21, 0]), ramp=ramp, act_bits=3,
                   scale=np.ones(5))
    readout = Dense(in_shape=(5,), weight=np.array([[0, 1, 0, 0, 2], [0, 1, 0, 0, 2],
                                                    [0, 0, 1, -1, 1]]),
                    bias=np.zeros(3, dtype=np.int64), ramp=None, act_bits=None,
                    scale=np.ones(3))
    assert encoder.levels == levels
    return Network(encoder=encoder, layers=(hidden, readout))


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_edge_cases(simulator, build_root):
    net = edge_case_network()
    a0 = stimulus(net, None, 12, seed=5)
    golden = closed_form(net, a0)
    hidden = golden.activations[1]
    assert (hidden[:, 0] == 0).all() and (hidden[:, 1:4] == net.layers[0].levels).all()
    assert (golden.logits[:, 0] == golden.logits[:, 1]).all() and (golden.classes != 1).all()
    assert (a0[0] == 0).all() and (a0[1] == net.encoder.levels).all()
    result = verify(net, a0, lanes=2, simulator=simulator, build_root=build_root,
                    backpressure=0.5, progress=False)
    assert result["mismatches"] == 0, result["first_mismatch"]


@pytest.mark.parametrize("cycles", [5, 60, 200])
def test_reset_in_the_middle_of_an_inference(cycles, digits_mlp_net, build_root):
    net, data = digits_mlp_net
    a0 = net.encoder.encode(data.x_test[:4])
    result = verify(net, a0, lanes=16, interrupt_cycles=cycles, build_root=build_root,
                    progress=False)
    assert result["mismatches"] == 0, result["first_mismatch"]


@functools.cache
def same_shape_networks():
    rng = np.random.default_rng(7)
    net = random_network(rng, conv=False, act_bits=2, max_layers=3)
    while True:
        other = random_network(rng, conv=False, act_bits=2, max_layers=3)
        if [l.weight.shape for l in other.layers] == [l.weight.shape for l in net.layers]:
            return net, other


def test_rtl_of_another_network_fails_with_a_precise_report(tmp_path, capsys, build_root):
    net, other = same_shape_networks()
    save(net, tmp_path / "net.npz")
    generate(other, tmp_path / "rtl_other", lanes=1)
    status = main(["verify", str(tmp_path / "net.npz"), "--rtl", str(tmp_path / "rtl_other"),
                   "--samples", "8", "--build-dir", str(build_root), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert status == 1
    assert result["mismatches"] > 0
    assert result["first_mismatch"].startswith("sample ")
    assert "expected" in result["first_mismatch"] and ", got " in result["first_mismatch"]


def test_verify_cli_report(tmp_path, capsys, build_root):
    net, _ = same_shape_networks()
    save(net, tmp_path / "net.npz")
    status = main(["verify", str(tmp_path / "net.npz"), "--lanes", "1", "--samples", "5",
                   "--build-dir", str(build_root)])
    out = capsys.readouterr().out
    assert status == 0
    assert "7 samples (2 edge cases + 5 inputs) on icarus" in out and "0 mismatches" in out


@pytest.mark.parametrize("args, message", [
    (["--rtl", "nowhere"], "does not hold onespike_top.v"),
    (["--samples", "0"], "--samples must be a positive integer"),
    (["--backpressure", "1.0"], "--backpressure must be in [0, 1)"),
    (["--shard", "3/2"], "--shard takes K/N with 1 <= K <= N"),
    (["--shard", "two"], "--shard takes K/N"),
    (["--jobs", "0"], "--jobs must be a positive integer"),
])
def test_verify_cli_errors(args, message, tmp_path, capsys):
    net, _ = same_shape_networks()
    save(net, tmp_path / "net.npz")
    assert main(["verify", str(tmp_path / "net.npz"), *args,
                 "--build-dir", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_inputs_of_the_wrong_shape(tmp_path, capsys):
    net, _ = same_shape_networks()
    with pytest.raises(OnespikeError, match="per sample, the network expects"):
        stimulus(net, np.zeros((3, int(np.prod(net.encoder.shape)) + 1)))


@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_digits_mlp_whole_test_split(simulator, digits_mlp_net, build_root):
    net, data = digits_mlp_net
    a0 = net.encoder.encode(data.x_test)
    result = verify(net, a0, lanes=8, simulator=simulator, build_root=build_root,
                    progress=False)
    assert result["mismatches"] == 0, result["first_mismatch"]
    assert result["samples"] == len(data.x_test)


@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_mnist_mlp_200_images(simulator, torch, build_root):
    from onespike import zoo
    from onespike.mapper import convert

    mnist = zoo.idx_dataset("mnist")
    model = zoo.train(zoo.mlp([784, 128, 10]), mnist, epochs=1, batch=128, lr=1e-3)
    net = convert(model, mnist.x_train[:5000])
    a0 = net.encoder.encode(mnist.x_test[:200])
    result = verify(net, a0, lanes=16, simulator=simulator, build_root=build_root,
                    progress=False)
    assert result["mismatches"] == 0, result["first_mismatch"]
    assert result["values_compared"] == expected_comparisons(net, 200)


def test_waves_are_left_for_gtkwave(build_root):
    net, _ = same_shape_networks()
    result = verify(net, stimulus(net, None, 3), lanes=1, waves=True,
                    build_root=build_root, progress=False)
    assert result["mismatches"] == 0
    waves = Path(result["waves"])
    assert waves.suffix in (".fst", ".vcd") and waves.stat().st_size > 0
    assert Path(result["junit"]).is_file()


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_trained_digits_cnn(simulator, digits_cnn_net, build_root):
    net, data = digits_cnn_net
    a0 = stimulus(net, data.x_test[:5])
    result = verify(net, a0, lanes=8, simulator=simulator, build_root=build_root,
                    progress=False)
    assert result["mismatches"] == 0, result["first_mismatch"]
    assert result["values_compared"] == expected_comparisons(net, 7)


@pytest.mark.parametrize("number, simulator", [(0, "icarus"), (9, "icarus"),   # 9: 1-D
                                               (10, "icarus"), (10, "verilator")])
def test_random_conv_networks(number, simulator, build_root):

    net, rng = conv_net_and_rng(number)
    result = verify(net, random_inputs(rng, net, 4), lanes=2, simulator=simulator,
                    build_root=build_root, seed=number, progress=False)
    assert result["mismatches"] == 0, result["first_mismatch"]


@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_mnist_cnn_100_images(simulator, torch, build_root):
    from onespike import zoo
    from onespike.mapper import convert

    mnist = zoo.idx_dataset("mnist", image=True)
    model = zoo.train(zoo.mnist_cnn(), mnist, epochs=1, batch=128, lr=1e-3)
    net = convert(model, mnist.x_train[:5000])
    a0 = net.encoder.encode(mnist.x_test[:100])
    result = verify(net, a0, lanes=16, simulator=simulator, build_root=build_root,
                    idle=0.0, backpressure=0.1, progress=False)
    assert result["mismatches"] == 0, result["first_mismatch"]
    assert result["values_compared"] == expected_comparisons(net, 100)


# --- the harness bench: sharding, planted faults, the classic bench -----------------------

@pytest.mark.parametrize("samples", [1, 2, 5, 7, 40, 201])
@pytest.mark.parametrize("shards", [1, 2, 3, 8])
def test_shard_slices_hold_every_sample_exactly_once(samples, shards):
    slices = shard_slices(samples, shards)
    covered = np.concatenate([np.arange(samples)[s] for s in slices])
    assert np.array_equal(covered, np.arange(samples))
    assert len(slices) == min(samples, shards)
    sizes = [s.stop - s.start for s in slices]
    assert max(sizes) - min(sizes) <= 1


def observed_of(result):
    return np.load(Path(result["observed"]), allow_pickle=False)


def test_jobs_and_shards_equal_an_unsharded_run(build_root):
    net, _ = same_shape_networks()
    a0 = stimulus(net, None, 7, seed=3)
    whole = verify(net, a0, lanes=1, build_root=build_root, progress=False)
    jobs = verify(net, a0, lanes=1, build_root=build_root, progress=False, jobs=2)
    shards = [verify(net, a0, lanes=1, build_root=build_root, progress=False, shard=(k, 3))
              for k in (1, 2, 3)]
    for result in [whole, jobs, *shards]:
        assert result["mismatches"] == 0, result["first_mismatch"]
    assert jobs["values_compared"] == whole["values_compared"] == \
        sum(s["values_compared"] for s in shards)
    assert [s["first_sample"] for s in shards] == [0, 3, 6]
    reference = observed_of(whole)
    for parts in ([jobs], shards):
        for key in reference.files:
            if key.startswith("times") or key in ("logits", "classes"):
                merged = np.concatenate([observed_of(r)[key] for r in parts])
                assert np.array_equal(merged, reference[key]), key
    import xml.etree.ElementTree as ET
    cases = list(ET.parse(jobs["junit"]).getroot().iter("testcase"))
    assert [c.get("name") for c in cases] == ["harness_regression [shard 1/2]",
                                              "harness_regression [shard 2/2]"]
    assert all(c.find("failure") is None for c in cases)


def test_shard_from_the_command_line(tmp_path, capsys, build_root):
    net, _ = same_shape_networks()
    save(net, tmp_path / "net.npz")
    status = main(["verify", str(tmp_path / "net.npz"), "--lanes", "1", "--samples", "5",
                   "--shard", "2/2", "--build-dir", str(build_root)])
    out = capsys.readouterr().out
    assert status == 0
    assert "shard 2/2: samples 3..6 of 7 on icarus" in out and "0 mismatches" in out


def wrap_rtl(rtl: Path, out: Path, logic: str, overrides: dict) -> Path:
    """A copy of the RTL in ``rtl`` with a fault planted: the design is renamed
    ``onespike_inner`` and wrapped by an ``onespike_top`` whose outputs pass through except
    those in ``overrides`` (name: Verilog expression over ``inner_<name>`` wires and the
    ``logic``'s own signals)."""
    manifest = json.loads((rtl / "manifest.json").read_text())
    ports = manifest["ports"]
    decl, conns, assigns = [], [], []
    for p in ports:
        width = f"[{p['width'] - 1}:0] " if p["width"] > 1 else ""
        decl.append(f"{'input' if p['direction'] == 'in' else 'output'} {width}{p['name']}")
        if p["direction"] == "in":
            conns.append(f".{p['name']}({p['name']})")
        else:
            logic = f"wire {width}inner_{p['name']};\n" + logic
            conns.append(f".{p['name']}(inner_{p['name']})")
            assigns.append(f"assign {p['name']} = "
                           f"{overrides.get(p['name'], 'inner_' + p['name'])};")
    out.mkdir(parents=True, exist_ok=True)
    text = (rtl / "onespike_top.v").read_text().replace("module onespike_top(",
                                                        "module onespike_inner(")
    assert "module onespike_inner(" in text
    text += (f"\nmodule onespike_top({', '.join(decl)});\n{logic}\n"
             f"onespike_inner inner({', '.join(conns)});\n" + "\n".join(assigns)
             + "\nendmodule\n")
    (out / "onespike_top.v").write_text(text)
    manifest["verilog_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


COUNT_RESULTS = """reg [31:0] results = 0; reg [31:0] after = 0;
always @(posedge clk) begin
  if (rst) begin results <= 0; after <= 0; end
  else begin
    if (o__valid && o__ready) results <= results + 1;
    if (results == {samples}) after <= after + 1;
  end
end
"""


def one_wrong_weight(net, a0):
    """``net`` with the first weight of layer 0 whose change by one changes a spike."""
    golden = closed_form(net, a0)
    for index in np.ndindex(net.layers[0].weight.shape):
        for delta in (1, -1):
            weight = net.layers[0].weight.copy()
            weight[index] += delta
            layer = dataclasses.replace(net.layers[0], weight=weight)
            faulty = dataclasses.replace(net, layers=(layer,) + tuple(net.layers[1:]))
            if not np.array_equal(closed_form(faulty, a0).times[1], golden.times[1]):
                return faulty
    raise AssertionError("no single weight change shows")


def tap_field_x(manifest, tap, field):
    """A mask expression that turns ``field`` of ``tap``'s payload to X (XOR with it)."""
    port = next(p for p in manifest["ports"] if p["name"] == f"{tap}__payload")
    f = port["fields"][field]
    bits = ["0"] * port["width"]
    for b in range(f["offset"], f["offset"] + f["width"]):
        bits[b] = "x"
    return f"{port['width']}'b{''.join(reversed(bits))}"


@pytest.mark.parametrize("fault, message", [
    ("wrong weight", "layer 0 (dense), neuron"),
    ("hang", "the design hangs"),
    ("extra transfer", "transfers after the last sample: ['tap_1"),
    ("extra class", "transfers after the last sample: ['o: class"),
    ("X on o__valid", "X on a handshake at cycle"),
    ("X in a tap field", "tap_1: field end is undefined (X)"),
])
def test_planted_faults_are_caught(fault, message, tmp_path, build_root):
    net, _ = same_shape_networks()
    a0 = stimulus(net, None, 4, seed=1)
    rtl = tmp_path / "rtl"
    generate(one_wrong_weight(net, a0) if fault == "wrong weight" else net, rtl, lanes=1)
    manifest = json.loads((rtl / "manifest.json").read_text())
    logic = COUNT_RESULTS.format(samples=len(a0))
    overrides = {
        "hang": {"o__valid": "inner_o__valid && results < 3"},
        "extra transfer": {"tap_1__valid": "inner_tap_1__valid || after == 2"},
        "extra class": {"o__valid": "inner_o__valid || after == 2"},
        "X on o__valid": {"o__valid": "results == 2 ? 1'bx : inner_o__valid"},
        "X in a tap field": {"tap_1__payload": "inner_tap_1__payload ^ (results == 1 ? "
                                               f"{tap_field_x(manifest, 'tap_1', 'end')}"
                                               " : 0)"},
    }.get(fault)
    if overrides:
        rtl = wrap_rtl(rtl, tmp_path / "planted", logic, overrides)
    kwargs = {"max_cycles": 20_000} if fault == "hang" else {}
    try:
        result = verify(net, a0, rtl=rtl, lanes=1, build_root=build_root, progress=False,
                        **kwargs)
    except OnespikeError as e:
        failure = str(e)
    else:
        assert result["mismatches"] > 0
        failure = result["first_mismatch"]
    assert message in failure


def test_classic_bench_still_runs(build_root):
    net = edge_case_network()
    result = verify(net, stimulus(net, None, 4, seed=2), lanes=2, build_root=build_root,
                    progress=False, bench="classic")
    assert result["mismatches"] == 0, result["first_mismatch"]
    assert result["bench"] == "classic"


@pytest.mark.parametrize("simulator, conv, skip", [("icarus", False, True),
                                                   ("verilator", True, True),
                                                   ("icarus", True, False)])
def test_dense_coding_is_exact_on_every_layer(simulator, conv, skip, build_root):
    """The multiply-accumulate baseline through the same testbench: every layer's
    activations (decoded into the golden time base), the logits and the classes."""
    rng = np.random.default_rng(300 + conv)
    net = conv_net_and_rng(3)[0] if conv else random_network(rng, conv=False, act_bits=3)
    a0 = random_inputs(rng, net, 5)
    result = verify(net, a0, lanes=2, simulator=simulator, build_root=build_root,
                    coding="dense", skip_zeros=skip, progress=False)
    assert result["mismatches"] == 0, result["first_mismatch"]
    assert result["values_compared"] == expected_comparisons(net, 5)


def test_dense_rtl_of_another_network_is_caught(tmp_path, capsys, build_root):
    net, other = same_shape_networks()
    save(net, tmp_path / "net.npz")
    generate(other, tmp_path / "rtl", lanes=1, coding="dense")
    status = main(["verify", str(tmp_path / "net.npz"), "--rtl", str(tmp_path / "rtl"),
                   "--samples", "6", "--build-dir", str(build_root), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert status == 1 and result["mismatches"] > 0
    assert result["first_mismatch"].startswith("sample ")


def test_each_multiply_form_gets_its_own_build(tmp_path):
    """``use_dsp=False`` (``--no-dsp``) generates the shifted-add RTL and never reuses the
    build of the plain-multiply one (or the other way round); both are exact."""
    net = edge_case_network()
    a0 = stimulus(net, None, 2, seed=3)
    for use_dsp in (True, False):
        result = verify(net, a0, lanes=2, build_root=tmp_path, progress=False,
                        use_dsp=use_dsp)
        assert result["mismatches"] == 0, result["first_mismatch"]
    manifests = {p.parent.parent.name.endswith("-nodsp"): json.loads(p.read_text())
                 for p in tmp_path.glob("*/rtl/manifest.json")}
    assert {k: m["use_dsp"] for k, m in manifests.items()} == {False: True, True: False}


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_random_sequence_network(simulator, build_root):
    """Two recurrent layers over five steps, every layer at every step; junk sequences
    interrupted by a reset first."""
    net = random_recurrent_network(np.random.default_rng(24), max_steps=6, max_width=6)
    assert net.steps == 5 and sum(layer.kind == "recurrent" for layer in net.layers) == 2
    a0 = stimulus(net, None, 6, seed=2)
    result = verify(net, a0, lanes=2, simulator=simulator, build_root=build_root,
                    interrupt_cycles=300, progress=False)
    assert result["mismatches"] == 0, result["first_mismatch"]
    assert result["values_compared"] == expected_comparisons(net, len(a0))


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_trained_digits_rnn(simulator, digits_rnn_net, build_root):
    net, data = digits_rnn_net
    a0 = stimulus(net, data.x_test, 20)
    result = verify(net, a0, lanes=4, simulator=simulator, build_root=build_root,
                    progress=False)
    assert result["mismatches"] == 0, result["first_mismatch"]
    assert result["values_compared"] == expected_comparisons(net, 22)


def test_sequence_inputs_of_the_wrong_shape(tmp_path, capsys):
    net = random_recurrent_network(np.random.default_rng(24), max_steps=6, max_width=6)
    save(net, tmp_path / "net.npz")
    np.save(tmp_path / "flat.npy", np.zeros((3,) + net.encoder.shape))
    assert main(["verify", str(tmp_path / "net.npz"), "--inputs",
                 str(tmp_path / "flat.npy")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "(5, 5) (steps, features...)" in err
