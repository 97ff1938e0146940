"""Real bitstreams with the YoWASP tools: the digits MLP on every supported board, timing
met at the board's clock; a missed timing target and a design too large are reported."""

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from onespike.boards.build import BuildFailed, build
from onespike.boards.platforms import BOARDS
from onespike.cli import main
from onespike.ir import save


def build_one(job):
    """One build, in a worker process (the tools are single-threaded), run from ``cwd``:
    an empty folder of its own that the build must leave empty (it writes only below
    ``out``). The worker's own working folder is restored for its next job."""
    path, board, out, lanes, clock, options, cwd = job
    before = os.getcwd()
    os.chdir(cwd)
    try:
        return build(path, board, out, lanes=lanes, clock_mhz=clock, log=lambda line: None,
                     **options)
    except BuildFailed as e:
        return e
    finally:
        os.chdir(before)


def working_folder(root, name):
    """The empty folder build ``name`` runs from."""
    return root / f"{name}-cwd"


# the middle ECP5 sizes build like the 12F and the 85F beside them: in the slow run only
MIDDLE = ("ulx3s-25f", "ulx3s-45f")
BOARD_PARAMS = [pytest.param(name, marks=pytest.mark.slow) if name in MIDDLE else name
                for name in BOARDS]


@pytest.fixture(scope="module")
def builds(digits_mlp_net, tmp_path_factory, request):
    """Every board's build of the digits MLP, two through a PLL, one at an impossible
    clock and the dense baseline with DSP multipliers, two at a time (each build is a
    chain of single-threaded tools), each run from an empty working folder of its own."""
    net, _ = digits_mlp_net
    root = tmp_path_factory.mktemp("builds")
    path = save(net, root / "digits.npz")
    # the planner's own lanes where the device is small; the large ECP5s at their
    # measured lanes (at the lanes the planner picks, 64, place and route takes long)
    quick = "not slow" in request.config.getoption("markexpr", "")
    jobs = {name: (board, board.default_lanes if board.luts > 20000 else None, None)
            for name, board in BOARDS.items() if not (quick and name in MIDDLE)}
    jobs["icebreaker-18mhz"] = (BOARDS["icebreaker"], 2, 18)    # through the PLL
    jobs["ulx3s-50mhz"] = (BOARDS["ulx3s-12f"], 4, 50)
    jobs["ulx3s-300mhz"] = (BOARDS["ulx3s-12f"], 2, 300)        # no design meets that
    jobs = {name: (*job, {}) for name, job in jobs.items()}
    jobs["ulx3s-dense"] = (BOARDS["ulx3s-12f"], 4, None, {"coding": "dense"})

    for name in jobs:
        working_folder(root, name).mkdir()
    with ProcessPoolExecutor(2) as pool:
        results = pool.map(build_one, [(path, board, root / name, lanes, clock, options,
                                        working_folder(root, name))
                                       for name, (board, lanes, clock, options)
                                       in jobs.items()])
        return dict(zip(jobs, results)), root


@pytest.mark.parametrize("name", BOARD_PARAMS)
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
    if summary["dsp_planned"] and board.family != "gowin":  # the products reach DSP blocks
        assert 0 < summary["dsp"] <= summary["dsp_planned"]
    assert json.loads((root / name / "build.json").read_text()) == summary
    assert (root / name / "network.npz").is_file()


def test_a_build_writes_nothing_outside_its_output_folder(builds):
    """Each build ran from an empty folder (as a user runs it from the repository root):
    every build, failed ones included, leaves that folder empty (issue 11)."""
    results, root = builds
    left = {name: sorted(str(f.relative_to(working_folder(root, name)))
                         for f in working_folder(root, name).rglob("*"))
            for name in results}
    left = {name: files for name, files in left.items() if files}
    assert not left, f"builds wrote into their working folder: {left}"


@pytest.mark.parametrize("name, mhz", [("icebreaker-18mhz", 18), ("ulx3s-50mhz", 50)])
def test_a_pll_clock_meets_timing(builds, name, mhz):
    results, _ = builds
    summary = results[name]
    assert not isinstance(summary, Exception), str(summary)
    assert summary["pll"] and summary["clock_mhz"] == mhz
    assert summary["timing_met"] and summary["fmax_mhz"] >= mhz


def test_the_dense_baseline_builds_behind_the_same_link(builds):
    """``build --coding dense``: the multiply-accumulate baseline of the same network on
    the same board, its multiplies in DSP blocks (one per lane, as planned)."""
    results, _ = builds
    summary = results["ulx3s-dense"]
    assert not isinstance(summary, Exception), str(summary)
    assert summary["coding"] == "dense" and summary["use_dsp"]
    assert summary["timing_met"] and summary["bram"] == summary["bram_estimate"]
    assert 0 < summary["dsp"] <= BOARDS["ulx3s-12f"].dsps
    ttfs = results["ulx3s-12f"]
    assert summary["checksum"] == ttfs["checksum"]     # the same network behind the link


def test_missed_timing_is_a_failure_with_the_numbers(builds):
    results, root = builds
    failure = results["ulx3s-300mhz"]
    assert isinstance(failure, BuildFailed)
    assert "timing not met on ulx3s-12f: Fmax" in str(failure)
    assert "the board clock is 300 MHz" in str(failure)
    report = json.loads((root / "ulx3s-300mhz" / "build.json").read_text())
    assert report["timing_met"] is False and report["fmax_mhz"] < 300


def test_a_missing_network_or_an_impossible_clock_is_one_clear_error(tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["build", "build/does-not-matter.npz", "--board", "icebreaker", "-o",
                   str(out)])
    assert status == 2
    assert "network file build/does-not-matter.npz does not exist" in capsys.readouterr().err
    status = main(["build", "x.npz", "--board", "tang-nano-9k", "--clock", "50", "-o",
                   str(out)])
    assert status == 2
    assert "onespike does not generate for gowin boards yet" in capsys.readouterr().err
    status = main(["build", "x.npz", "--board", "icebreaker", "--clock", "0.5", "-o",
                   str(out)])
    assert status == 2
    assert "--clock must be in MHz, 1..400, not 0.5" in capsys.readouterr().err
    assert not out.exists()


def test_too_many_lanes_for_the_board_is_refused_with_numbers(digits_mlp_net, tmp_path,
                                                               capsys):
    net, _ = digits_mlp_net
    path = save(net, tmp_path / "digits.npz")
    status = main(["build", str(path), "--board", "icebreaker", "--lanes", "16", "-o",
                   str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2
    assert "does not fit icebreaker (iCE40UP5K)" in err
    assert "5280 available" in err or "30 available" in err    # its LUTs or its EBR
    assert "--lanes" in err and "fits" in err
    assert not (tmp_path / "out").exists()


def test_boards_lists_every_board(capsys):
    assert main(["boards", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["boards"]
    assert [r["name"] for r in rows] == list(BOARDS)
    assert {r["name"]: r["clock_mhz"] for r in rows}["icebreaker"] == 12
