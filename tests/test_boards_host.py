"""The host runner (``onespike run``) against the real link design simulated behind a
pseudo-terminal: results equal to the golden model, corrupted frames retried, a board that
does not answer and a board holding another network refused with one clear line."""

import os
import tty

import numpy as np
import pytest

from onespike.boards import protocol as proto
from onespike.boards.host import BoardClient, run_inputs
from onespike.boards.link import LinkedAccelerator
from onespike.boards.simboard import SimulatedBoard
from onespike.errors import OnespikeError
from onespike.sim import closed_form
from onespike.sim.random_net import random_inputs, random_network

BAUD = 115200      # a pty ignores it; the simulated UART runs at 4 cycles per bit


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(5)
    net = random_network(rng, conv=False, max_layers=2, act_bits=3, max_width=8)
    return net, random_inputs(rng, net, 3)


def board_for(net, **kwargs):
    link = LinkedAccelerator(net, lanes=2, divisor=4, timeout=400, clock_hz=12_000_000)
    return SimulatedBoard(link, **kwargs)


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

    from onespike.boards.memories import inventory, load_image, plan_spram
    from onespike.cli import main
    from onespike.hdl.streams import discard
    from onespike.ir import save
    from onespike.boards.memories import OnPlatform
    from test_boards_memories import ModelPlatform

    rng = np.random.default_rng(12)
    net = random_network(rng, conv=False, max_layers=2, act_bits=3, max_width=8)
    a0 = random_inputs(rng, net, 3)

    def link(load_bytes=0):
        return LinkedAccelerator(net, lanes=2, divisor=4, timeout=400, clock_hz=12_000_000,
                                 load_bytes=load_bytes)

    plan = plan_spram(inventory(discard(link())), sprams=4, blocks_free=0,
                      block_cost=lambda r: 1)
    board_link = link(plan.load_bytes)
    platform = ModelPlatform()
    platform.spram_plan, platform.load_bus = plan, board_link.load
    build_dir = tmp_path / "bit"
    build_dir.mkdir()
    save(net, build_dir / "network.npz")
    (build_dir / "build.json").write_text(json.dumps({"baud": BAUD}))
    (build_dir / "weights.bin").write_bytes(load_image(plan))
    np.save(tmp_path / "x.npy", a0.astype(np.float64))
    with SimulatedBoard(board_link, top=OnPlatform(board_link, platform)) as board:
        status = main(["run", "--build", str(build_dir), "--port", board.port, "--inputs",
                       str(tmp_path / "x.npy"), "--timeout", "30", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert status == 0
    assert result["weights_loaded_bytes"] == plan.load_bytes > 0
    assert result["golden_mismatches"] == 0
    assert result["classes"] == list(closed_form(net, a0).classes)
