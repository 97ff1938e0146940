"""The host runner (``onespike run``) against the real link design simulated behind a
pseudo-terminal: results equal to the golden model, corrupted frames retried, a board that
does not answer and a board holding another network refused with one clear line."""

import os
import tty

import numpy as np
import pytest

from onespike.boards import protocol as proto
from onespike.boards.host import BoardClient, run_inputs
from onespike.boards.simboard import SimulatedBoard
from onespike.errors import OnespikeError
from onespike.sim import closed_form, random_inputs, random_recurrent_network
from onespike.sim.random_net import random_network
from helpers import new_link, random_dense

BAUD = 115200      # a pty ignores it; the simulated UART runs at 4 cycles per bit


@pytest.fixture(scope="module")
def small():
    return random_dense(5, layers=2, width=8, samples=3)


def board_for(net, **kwargs):
    return SimulatedBoard(new_link(net, timeout=400), **kwargs)


def test_results_match_the_golden_model_through_corrupted_frames(small):
    net, a0 = small
    # byte 7 of the first inference reply and byte 30 from the host are flipped in transit
    identify_reply = 5 + struct_size()
    with board_for(net, flip_reply_bytes={identify_reply + 7},
                   flip_request_bytes={5 + 30}) as board:
        with BoardClient(board.port, baud=BAUD, timeout=30) as client:
            result = run_inputs(client, a0, net=net, spikes=True, progress=False)
    golden = closed_form(net, a0)
    assert result["classes"] == list(golden.classes)
    assert result["logits"] == golden.logits.tolist()
    assert result["golden_mismatches"] == 0
    assert result["retries"] == 2


def struct_size():
    import struct
    return struct.calcsize(proto.Identity.FORMAT)


def test_a_board_holding_another_network_is_refused(small):
    net, _ = small
    other = random_network(np.random.default_rng(6), conv=False, max_layers=2, act_bits=3,
                           max_width=8)
    with board_for(other) as board:
        with BoardClient(board.port, baud=BAUD, timeout=30) as client:
            with pytest.raises(OnespikeError, match="holds another network"):
                run_inputs(client, np.zeros((1,) + net.encoder.shape, int), net=net,
                           progress=False)


def test_a_board_that_does_not_answer_is_reported():
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        with BoardClient(os.ttyname(slave), baud=BAUD, timeout=0.5) as client:
            with pytest.raises(OnespikeError, match="no answer from the board on /dev/pts/"):
                client.identify()
    finally:
        os.close(master), os.close(slave)


def test_a_missing_port_is_one_clear_error():
    with pytest.raises(OnespikeError, match="cannot open serial port /dev/nonexistent"):
        BoardClient("/dev/nonexistent", baud=BAUD)


def test_onespike_run_loads_spram_weights_then_classifies(tmp_path, capsys):
    """`onespike run --build DIR` on a board that keeps its weights in (modelled) SPRAM."""
    import json

    from onespike.boards.memories import all_weights_in_spram, load_image
    from onespike.cli import main
    from onespike.ir import save

    net, a0 = random_dense(12, layers=2, width=8, samples=3)
    top, board_link, plan = all_weights_in_spram(
        lambda load_bytes: new_link(net, timeout=400, load_bytes=load_bytes), model=True)
    build_dir = tmp_path / "bit"
    build_dir.mkdir()
    save(net, build_dir / "network.npz")
    (build_dir / "build.json").write_text(json.dumps({"baud": BAUD}))
    (build_dir / "weights.bin").write_bytes(load_image(plan))
    np.save(tmp_path / "x.npy", a0.astype(np.float64))
    with SimulatedBoard(board_link, top=top) as board:
        status = main(["run", "--build", str(build_dir), "--port", board.port, "--inputs",
                       str(tmp_path / "x.npy"), "--timeout", "30", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert status == 0
    assert result["weights_loaded_bytes"] == plan.load_bytes > 0
    assert result["golden_mismatches"] == 0
    assert result["classes"] == list(closed_form(net, a0).classes)


@pytest.fixture(scope="module")
def sequences():
    """A small random recurrent network (4 steps of 7 features) and sequences for it."""
    rng = np.random.default_rng(7)
    net = random_recurrent_network(rng, max_steps=6, max_width=10)
    return net, random_inputs(rng, net, 3)


def test_sequences_are_answered_like_the_golden_model(sequences):
    """One INFER frame a sequence (its steps one after the other), one answer a sequence."""
    net, a0 = sequences
    with board_for(net) as board:
        with BoardClient(board.port, baud=BAUD, timeout=30) as client:
            result = run_inputs(client, a0, net=net, spikes=True, progress=False)
    golden = closed_form(net, a0)
    assert result["samples"] == len(a0)
    assert result["classes"] == list(golden.classes)
    assert result["logits"] == golden.logits.tolist()
    assert result["golden_mismatches"] == 0


def test_sequences_of_the_wrong_shape_are_refused_in_one_line(sequences, tmp_path, capsys):
    """Refused before any inference: sequences one step short (integers, from Python) and
    float inputs of another shape (``onespike run --build``), each in one line."""
    import json

    from onespike.cli import main
    from onespike.ir import save

    net, a0 = sequences
    steps, features = net.steps, net.encoder.shape[0]
    build_dir = tmp_path / "bit"
    build_dir.mkdir()
    save(net, build_dir / "network.npz")
    (build_dir / "build.json").write_text(json.dumps({"baud": BAUD}))
    np.save(tmp_path / "flat.npy", a0.reshape(len(a0), -1).astype(np.float64))
    with board_for(net) as board:
        with BoardClient(board.port, baud=BAUD, timeout=30) as client:
            with pytest.raises(OnespikeError) as refused:
                run_inputs(client, a0[:, 1:], net=net, progress=False)
        status = main(["run", "--build", str(build_dir), "--port", board.port, "--inputs",
                       str(tmp_path / "flat.npy"), "--timeout", "30"])
    assert str(refused.value) == (
        f"inputs have shape ({steps - 1}, {features}) per sample "
        f"({(steps - 1) * features} values); the board's network takes sequences "
        f"({steps}, {features}) (steps, features...), {steps * features} values per sample")
    err = capsys.readouterr().err
    assert status == 2
    assert err == (f"onespike: error: inputs have shape ({steps * features},) per sample, "
                   f"the network expects ({steps}, {features}) (steps, features...)\n")


@pytest.mark.slow
def test_onespike_run_answers_row_rnn_sequences_with_weights_in_spram(torch, tmp_path,
                                                                     capsys):
    """`onespike run --build DIR` with float (samples, 28, 28) sequences for an untrained
    28-128-10 row RNN (the MNIST RNN's shape) at the iCEBreaker's planned lanes [6, 1],
    its weights in (modelled) SPRAM loaded first: every answer the golden model's."""
    import json

    from onespike import zoo
    from onespike.boards.memories import all_weights_in_spram, load_image
    from onespike.cli import main
    from onespike.ir import save
    from onespike.mapper import convert

    torch.manual_seed(0)
    x = np.random.default_rng(0).random((64, 28, 28), dtype=np.float32)
    net = convert(zoo.row_rnn(28, 128, 10).eval(), x)
    top, board_link, plan = all_weights_in_spram(
        lambda load_bytes: new_link(net, lanes=[6, 1], timeout=400, load_bytes=load_bytes),
        model=True)
    build_dir = tmp_path / "bit"
    build_dir.mkdir()
    save(net, build_dir / "network.npz")
    (build_dir / "build.json").write_text(json.dumps({"baud": BAUD}))
    (build_dir / "weights.bin").write_bytes(load_image(plan))
    np.save(tmp_path / "x.npy", x[:2].astype(np.float64))
    with SimulatedBoard(board_link, top=top) as board:
        status = main(["run", "--build", str(build_dir), "--port", board.port, "--inputs",
                       str(tmp_path / "x.npy"), "--timeout", "120", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert status == 0 and result["golden_mismatches"] == 0
    assert result["classes"] == list(closed_form(net, net.encoder.encode(x[:2])).classes)
