"""cocotb regression of the generated Verilog (Icarus and Verilator) against the golden model."""

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from helpers import conv_net_and_rng
from onespike.cli import main
from onespike.errors import OnespikeError
from onespike.hdl.generate import generate
from onespike.ir import Dense, Encoder, Network, save
from onespike.sim import closed_form, random_inputs, random_network
from onespike.sim.verify import stimulus, verify

SIMULATORS = ["icarus", "verilator"]


@pytest.fixture(scope="module")
def build_root(tmp_path_factory):
    return tmp_path_factory.mktemp("verify")


def expected_comparisons(net, samples):
    """Every neuron of every spike stream, every logit and the class, for every sample."""
    streams = [int(np.prod(layer.in_shape)) for layer in net.layers]
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


@pytest.mark.parametrize("number, simulator", [(0, "icarus"), (5, "icarus"),
                                               (12, "icarus"), (12, "verilator")])
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
