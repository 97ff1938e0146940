"""Real bitstreams with the YoWASP tools: the digits MLP on every supported board, timing
met at the board's clock; a missed timing target and a design too large are reported."""

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from amaranth.build import Attrs, Clock, Pins, Resource
from amaranth_boards.ulx3s import ULX3S_12F_Platform

from onespike.boards.build import BuildFailed, build
from onespike.boards.platforms import BOARDS
from onespike.cli import main
from onespike.ir import save


class OverclockedULX3S(ULX3S_12F_Platform):
    """A ULX3S whose oscillator is said to run at 400 MHz: no design meets that."""
    resources = [Resource("clk25", 0, Pins("G2", dir="i"), Clock(400e6),
                          Attrs(IO_TYPE="LVCMOS33"))
                 if r.name == "clk25" else r for r in ULX3S_12F_Platform.resources]


@pytest.fixture(scope="module")
def builds(digits_mlp_net, tmp_path_factory):
    """Every board's build of the digits MLP, and one at an impossible clock, two at a
    time (each build is a chain of single-threaded tools)."""
    net, _ = digits_mlp_net
    root = tmp_path_factory.mktemp("builds")
    path = save(net, root / "digits.npz")
    jobs = {name: (board, None) for name, board in BOARDS.items()}
    jobs["overclocked"] = (dataclasses.replace(BOARDS["ulx3s-12f"], platform=OverclockedULX3S),
                           2)

    def one(name):
        board, lanes = jobs[name]
        try:
            return build(path, board, root / name, lanes=lanes, log=lambda line: None)
        except BuildFailed as e:
            return e

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(jobs, pool.map(one, jobs))), root


@pytest.mark.parametrize("name", list(BOARDS))
def test_digits_mlp_bitstream_meets_timing(builds, name):
    results, root = builds
    board, summary = BOARDS[name], results[name]
    assert not isinstance(summary, Exception), str(summary)
    assert summary["timing_met"] and summary["fmax_mhz"] >= board.clock_hz / 1e6
    assert summary["clock_mhz"] == board.clock_hz / 1e6
    bitstream = Path(summary["bitstream"])
    assert bitstream.name == board.bitstream_name and bitstream.stat().st_size > 10_000
    assert 0 < summary["luts"] <= board.luts and 0 < summary["ffs"]
    assert 0 < summary["bram"] <= board.blocks
    assert json.loads((root / name / "build.json").read_text()) == summary
    assert (root / name / "network.npz").is_file()


def test_missed_timing_is_a_failure_with_the_numbers(builds):
    results, root = builds
    failure = results["overclocked"]
    assert isinstance(failure, BuildFailed)
    assert "timing not met on ulx3s-12f: Fmax" in str(failure)
    assert "the board clock is 400 MHz" in str(failure)
    report = json.loads((root / "overclocked" / "build.json").read_text())
    assert report["timing_met"] is False and report["fmax_mhz"] < 400


def test_a_missing_network_or_a_clock_without_pll_is_one_clear_error(tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["build", "build/does-not-matter.npz", "--board", "icebreaker", "-o",
                   str(out)])
    assert status == 2
    assert "network file build/does-not-matter.npz does not exist" in capsys.readouterr().err
    status = main(["build", "x.npz", "--board", "ulx3s-85f", "--clock", "50", "-o", str(out)])
    assert status == 2
    assert "runs from its 25 MHz oscillator" in capsys.readouterr().err
    assert not out.exists()


def test_too_many_lanes_for_the_board_is_refused_with_numbers(digits_mlp_net, tmp_path,
                                                               capsys):
    net, _ = digits_mlp_net
    path = save(net, tmp_path / "digits.npz")
    status = main(["build", str(path), "--board", "icebreaker", "--lanes", "16", "-o",
                   str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2
    assert "does not fit icebreaker" in err and "the iCE40UP5K has 30" in err
    assert not (tmp_path / "out").exists()


def test_boards_lists_every_board(capsys):
    assert main(["boards", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["boards"]
    assert [r["name"] for r in rows] == list(BOARDS)
    assert {r["name"]: r["clock_mhz"] for r in rows}["icebreaker"] == 12
