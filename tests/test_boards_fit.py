"""The fit planner: its prediction of every block RAM, LUT RAM and SPRAM against yosys'
own ``stat`` (synthesis only), lanes chosen or refused before any tool runs, and real
builds of the networks it accepts, which never fail place and route for lack of room."""

import json
from pathlib import Path

import numpy as np
import pytest

from onespike.boards.build import LinkOptions, build, fit, synthesize
from onespike.boards.platforms import BOARDS, board_named
from onespike.errors import OnespikeError
from onespike.ir import save
from onespike.sim import random_network

# yosys' memory_libmap cell per planned kind, by family ("FF": kept in logic)
CELLS = {"ice40": {"block": "$__ICE40_RAM4K_", "logic": "FF"},
         "ecp5": {"block": ("$__DP16KD_", "$__PDPW16KD_"), "distributed": "$__TRELLIS_DPR16X4_",
                  "logic": "FF"},
         "gowin": {"block": ("$__GOWIN_SP_", "$__GOWIN_DP_", "$__GOWIN_SDP_"),
                   "distributed": "$__GOWIN_LUTRAM_", "logic": "FF"}}


@pytest.fixture(scope="module")
def digits_644832_net(torch):
    """The 64-48-32-10 digits MLP with BatchNorm (folded by the mapper), act_bits 4,
    weight_bits 8: the network of the issue that once failed place and route."""
    from onespike import zoo
    from onespike.mapper import convert

    nn = torch.nn
    torch.manual_seed(0)
    data = zoo.digits()
    model = zoo.train(nn.Sequential(nn.Linear(64, 48), nn.BatchNorm1d(48), nn.ReLU(),
                                    nn.Linear(48, 32), nn.BatchNorm1d(32), nn.ReLU(),
                                    nn.Linear(32, 10)), data)
    return convert(model, data.x_train)


def random_net(seed, conv):
    net = random_network(np.random.default_rng(seed), conv=conv, max_layers=4, max_width=64)
    return net


def check_against_yosys(net, board_name, lanes, out):
    """Synthesize; the plan's totals must equal yosys' and every memory must go where
    the plan put it. Returns the row for the README table."""
    board = board_named(board_name)
    result = synthesize(net, board, out, lanes=lanes, log=lambda line: None)
    placed, stat, mapped = result["fit"], result["stat"], result["mapped"]
    plan = placed.plan
    assert (stat["block"], stat["distributed"], stat["spram"]) == \
        (plan.blocks, plan.lutram, plan.sprams), (stat, plan.summary())
    # DSP blocks: exact on ECP5; synth_ice40 and synth_gowin leave small products in LUTs,
    # which the planner counts as blocks (never fewer than synthesis uses)
    # iCE40 and Gowin synthesis leave small products in LUTs: the plan is a bound there
    # (that DSP blocks are used at all: the real builds of test_boards_build)
    assert stat["dsp"] == placed.dsps or \
        board.family != "ecp5" and stat["dsp"] <= placed.dsps, (stat, placed.dsps)
    for record in plan.records:
        kind = plan.kinds[record.name]
        if kind in ("spram", "sliced") or record.used_width == 0:
            continue                 # instances of their own (counted in the totals above)
                                     # or a ROM of equal rows, which yosys removes
        expected = CELLS[board.family][kind]
        assert mapped.get(record.name) in (expected if isinstance(expected, tuple)
                                           else (expected,)), (record, kind, mapped)
    return {"board": board_name, "lanes": list(placed.lanes), "blocks": plan.blocks,
            "stat_blocks": stat["block"], "lutram": plan.lutram,
            "stat_lutram": stat["distributed"], "spram": plan.sprams,
            "stat_spram": stat["spram"], "luts_estimate": placed.luts, "luts": stat["luts"]}


@pytest.mark.parametrize("board, seed, conv, lanes", [
    ("icebreaker", 4, False, 4),          # a 47-63-17-53-33 MLP, SPRAM and logic; 13 DSP
                                          # blocks would be needed: multiplies from LUTs
    ("icebreaker", 4, False, 1),          # 7 SB_MAC16
    ("ulx3s-12f", 1, True, 3),            # conv + dense, LUT RAM and block RAM, MULT18X18D
    ("tang-nano-9k", 4, False, 2),        # 14 MULT9X9/MULT18X18
])
def test_plan_equals_yosys_stat(board, seed, conv, lanes, tmp_path):
    check_against_yosys(random_net(seed, conv), board, lanes, tmp_path / "out")


@pytest.mark.slow
@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-12f", "ulx3s-85f", "tang-nano-9k"])
@pytest.mark.parametrize("seed", [1, 4, 6, 9])
@pytest.mark.parametrize("lanes", [1, 4, None])
def test_plan_equals_yosys_stat_sweep(board, seed, lanes, tmp_path):
    net = random_net(seed, conv=seed % 2 == 1)
    try:
        row = check_against_yosys(net, board, lanes, tmp_path / "out")
    except OnespikeError as e:
        assert "does not fit" in str(e) or "lane count" in str(e)
        return
    print(json.dumps(row))


def test_lanes_that_cannot_fit_are_refused_with_numbers(digits_mlp_net):
    net, _ = digits_mlp_net
    with pytest.raises(OnespikeError) as refused:
        fit(net, board_named("icebreaker"), 64)
    message = str(refused.value)
    assert "does not fit icebreaker (iCE40UP5K)" in message
    assert "EBR (4 kbit) blocks needed, 30 available" in message
    largest = int(message.split("--lanes ")[1].split()[0])
    assert 1 <= largest < 64
    assert fit(net, board_named("icebreaker"), largest).plan.blocks <= 30


@pytest.fixture(scope="module")
def mnist_shaped_net(torch):
    """An untrained 784-128-10 MLP (the MNIST MLP's memory, without the data set)."""
    from onespike import zoo
    from onespike.mapper import convert

    torch.manual_seed(0)
    calib = np.random.default_rng(0).random((64, 784), dtype=np.float32)
    return convert(zoo.mlp([784, 128, 10]).eval(), calib)


def test_a_network_over_the_memory_floor_is_refused_from_its_bits(mnist_shaped_net,
                                                                  monkeypatch):
    """Before any component is built, counting every memory kind (SPRAM on the iCE40),
    with what may fit: fewer weight bits where those fit the floor, boards that hold it."""
    import time
    from onespike.boards import fit as flow
    from onespike.boards.capacity import floor_of, shortfall

    def built(*args, **kwargs):
        raise AssertionError("a component was built")
    monkeypatch.setattr(flow, "BoardTop", built)
    board = board_named("tang-nano-9k")
    started = time.monotonic()
    with pytest.raises(OnespikeError) as refused:
        fit(mnist_shaped_net, board)
    assert time.monotonic() - started < 5
    message = str(refused.value)
    assert "at any lane count" in message and "26 BSRAM blocks (468 kbit)" in message
    bits = int(message.split("--weight-bits ")[1].split(" ")[0])
    luts = flow._memory_luts(mnist_shaped_net, board, flow.LUT_SHARE)
    assert shortfall(floor_of(mnist_shaped_net, bits), board, luts) == 0
    assert shortfall(floor_of(mnist_shaped_net, bits + 1), board, luts) > 0
    assert "ulx3s-85f" in message.split("a board with more memory")[1]
    from onespike import zoo
    from onespike.mapper import convert
    calib = np.random.default_rng(0).random((64, 784), dtype=np.float32)
    wide = convert(zoo.mlp([784, 512, 10]).eval(), calib)      # 3.2 Mbit of weights
    with pytest.raises(OnespikeError, match=r"4 SPRAM \(1024 kbit\)"):
        fit(wide, board_named("icebreaker"))


def test_a_refusal_at_one_lane_names_weight_bits_the_planner_fits(mnist_shaped_net):
    """The floor's weight bits leave block packing out (the MNIST MLP at 6 bits still needs
    37 BSRAM blocks of the Tang Nano 9K's 26): the planner's own refusal at one lane names
    the most bits at which its plan fits, checked here by planning them."""
    from onespike.boards.fit import _narrower

    board = board_named("tang-nano-9k")
    floor_bits = 6
    with pytest.raises(OnespikeError, match="even at 1 lane") as refused:
        fit(_narrower(mnist_shaped_net, floor_bits), board)
    bits = int(str(refused.value).split("--weight-bits ")[1].split(":")[0])
    assert 2 <= bits < floor_bits
    assert fit(_narrower(mnist_shaped_net, bits), board).lanes
    with pytest.raises(OnespikeError, match="even at 1 lane"):
        fit(_narrower(mnist_shaped_net, bits + 1), board)


def test_a_row_rnn_is_planned_with_both_weight_matrices(torch):
    """An untrained 28-128-10 row RNN (the MNIST RNN's memories): the floor counts its
    input and state weights; the iCEBreaker plan holds the layer's joint weights in SPRAM
    at the lanes it plans (once refused for the memories of the first lanes tried)."""
    from onespike import zoo
    from onespike.boards.capacity import floor_of
    from onespike.mapper import convert

    torch.manual_seed(0)
    calib = np.random.default_rng(0).random((64, 28, 28), dtype=np.float32)
    net = convert(zoo.row_rnn(28, 128, 10).eval(), calib)
    assert floor_of(net).weights == ((28 + 128) * 128 + 128 * 10) * 8
    board = board_named("icebreaker")
    placed = fit(net, board)
    weights = next(r for r in placed.plan.records
                   if r.name == "accelerator.layer0.core.weights")
    lanes = placed.lanes[0]
    assert (weights.width, weights.depth) == (8 * lanes, (28 + 128) * -(-128 // lanes))
    assert placed.plan.kinds[weights.name] == "spram"
    assert not placed.problems(board, board.luts) and placed.lanes[0] > 1


def test_without_lanes_the_fastest_configuration_that_fits_is_chosen(digits_mlp_net):
    net, _ = digits_mlp_net
    board = board_named("icebreaker")
    chosen = fit(net, board)
    assert f"lanes {list(chosen.lanes)} ({sum(chosen.lanes)} in all)" in chosen.reason
    assert chosen.plan.blocks <= board.blocks and chosen.plan.sprams <= 4
    assert chosen.steady < fit(net, board, 1).steady
    assert chosen.luts <= board.luts * 0.85
    # a large board takes every neuron in parallel
    assert fit(net, board_named("ulx3s-85f")).lanes == (64, 10)


def test_ttfs_multiplies_take_dsp_blocks_only_where_the_board_has_enough(digits_mlp_net):
    net, _ = digits_mlp_net
    board = board_named("ulx3s-85f")
    with_dsp = fit(net, board)
    assert with_dsp.use_dsp and 0 < with_dsp.dsps <= board.dsps
    assert with_dsp.dsps == LinkOptions().accelerator(net, with_dsp.lanes).multipliers
    assert f"the lane multiplies in {with_dsp.dsps} DSP blocks" in with_dsp.reason
    without = fit(net, board, link=LinkOptions(use_dsp=False))
    assert (without.use_dsp, without.dsps, without.lanes) == (False, 0, with_dsp.lanes)
    net = random_net(4, conv=False)
    short = fit(net, board_named("icebreaker"), 4)   # 8 SB_MAC16: some layers' multiplies
    sized = LinkOptions(firing=short.firing).accelerator(net, short.lanes)
    per_layer = [getattr(core, "multipliers", 0) for core in sized.cores]
    assert isinstance(short.use_dsp, tuple) and any(short.use_dsp) and not all(short.use_dsp)
    assert short.dsps == sum(m for m, u in zip(per_layer, short.use_dsp) if u) <= 8
    assert all(short.dsps + m > 8 for m, u in zip(per_layer, short.use_dsp) if not u and m)
    assert "(13 needed for all, 8 available)" in short.reason


def test_block_ram_shortage_uses_lut_ram_and_logic():
    net = random_net(4, conv=False)
    placed = fit(net, board_named("ulx3s-12f"))
    kinds = set(placed.plan.kinds.values())
    assert "distributed" in kinds and placed.plan.blocks <= 32
    placed = fit(net, board_named("icebreaker"), 2)   # no LUT RAM: SPRAM and logic
    assert {"spram", "logic"} <= set(placed.plan.kinds.values())
    assert placed.plan.blocks <= 30


def test_a_plan_that_place_and_route_finds_too_full_is_planned_again(digits_mlp_net,
                                                                     tmp_path, monkeypatch):
    """The LUT estimate is a fit: when nextpnr cannot place the planner's choice, the build
    plans again within fewer LUTs (fewer lanes) instead of failing; lanes the user asked
    for are not changed behind their back."""
    from onespike.boards import build as flow

    net, _ = digits_mlp_net
    board, attempts, lines = board_named("tang-nano-9k"), [], []

    def too_full_once(board, root, log):
        attempts.append(root)
        if len(attempts) == 1:
            failure = flow.BuildFailed("the design does not fit the device")
            failure.misfit = True
            raise failure
        return 1.0

    monkeypatch.setattr(flow, "run_tools", too_full_once)
    first = fit(net, board)
    placed, *_, seconds = flow._place(net, board, tmp_path / "out", None, flow.LinkOptions(),
                                      None, lines.append)
    assert len(attempts) == 2 and seconds == 1.0
    assert placed.luts < first.luts and sum(placed.lanes) < sum(first.lanes)
    assert any("too full" in line for line in lines)
    attempts.clear()
    with pytest.raises(flow.BuildFailed, match=r"planner estimated ~\d+ of 8640 LUTs for "
                                                r"--lanes 4.*build without --lanes"):
        flow._place(net, board, tmp_path / "out", 4, flow.LinkOptions(), None, lines.append)
    assert len(attempts) == 1


def test_a_tool_fault_on_planned_lanes_is_planned_around(digits_mlp_net, tmp_path,
                                                         monkeypatch):
    """A tool that fails on a fault of its own (yosys 0.70 asserts in ABC9 on some
    netlists) at lanes the planner chose: planned again (other lanes, another netlist);
    at lanes the user asked for, or on an error the tools report, it is the failure."""
    from onespike.boards import build as flow

    net, _ = digits_mlp_net
    board, attempts, lines = board_named("ulx3s-12f"), [], []

    def fails_once(reason, fault):
        def run(board, root, log):
            attempts.append(root)
            if len(attempts) == 1:
                failure = flow.BuildFailed(reason)
                failure.misfit, failure.fault = False, fault
                raise failure
            return 1.0
        return run

    monkeypatch.setattr(flow, "run_tools", fails_once("ERROR: Assert `x' failed", True))
    first = fit(net, board)
    placed, *_, seconds = flow._place(net, board, tmp_path / "out", None, flow.LinkOptions(),
                                      None, lines.append)
    assert len(attempts) == 2 and seconds == 1.0 and placed.lanes != first.lanes
    assert any("a fault of their own" in line for line in lines)
    for lanes, fault in [(4, True), (None, False)]:
        attempts.clear()
        monkeypatch.setattr(flow, "run_tools", fails_once("ERROR: no such cell", fault))
        with pytest.raises(flow.BuildFailed, match="not a lack of room"):
            flow._place(net, board, tmp_path / "out", lanes, flow.LinkOptions(), None,
                        lines.append)
        assert len(attempts) == 1


@pytest.mark.parametrize("script, fails, raised", [
    ("echo crashed; exit 3", 1, None),                      # a crash, then a good run
    ("echo crashed; exit 3", 2, "exit status 3, the log ends: crashed"),
    ("echo 'ERROR: no clock'; exit 1", 1, "ERROR: no clock")])   # reported: not rerun
def test_tools_that_crash_are_run_again_once(tmp_path, script, fails, raised):
    """A tool stopping without an ERROR line (a crash, e.g. a WebAssembly trap) is run
    once more; a reported error is not; the failure quotes the log's last line."""
    from onespike.boards import build as flow

    counter = tmp_path / "runs"
    (tmp_path / f"build_{flow.NAME}.sh").write_text(
        f"echo x >> {counter}\n[ $(wc -l < {counter}) -gt {fails} ] && exit 0\n{script}\n")
    lines = []
    if raised is None:
        flow.run_tools(board_named("icebreaker"), tmp_path, lines.append)
        assert any("running them again" in line for line in lines)
        assert len(counter.read_text().split()) == 2
    else:
        with pytest.raises(flow.BuildFailed, match=raised):
            flow.run_tools(board_named("icebreaker"), tmp_path, lines.append)
        assert len(counter.read_text().split()) == fails


def fake_tools(board, root, log):
    """What build() reads from the tools, without running them: a timing report, the
    bitstream and the synthesis log."""
    used = {"ICESTORM_LC": 0, "ICESTORM_RAM": 0, "ICESTORM_SPRAM": 0, "ICESTORM_DSP": 0}
    (root / "report.json").write_text(json.dumps({
        "fmax": {"clk": {"achieved": 100.0}},
        "utilization": {name: {"used": n} for name, n in used.items()}}))
    (root / board.bitstream_name).write_bytes(b"")
    (root / "onespike.rpt").write_text("")
    return 0.0


def test_the_plan_and_the_build_agree_on_firing(tmp_path, monkeypatch):
    """The firing asked for reaches the planner (list memories are planned where a layer
    sorts) and the built design; build.json records it per layer. Tools faked."""
    from onespike.boards import build as flow

    net = random_net(8, conv=True)          # conv, conv, dense readout
    board = board_named("icebreaker")
    auto, sweep = (fit(net, board, 1, LinkOptions(firing=f)) for f in ("sorted", "sweep"))
    assert "sorted" in auto.firing and auto.firing[-1] is None
    assert sweep.firing == ("sweep",) * (len(net.layers) - 1) + (None,)
    assert set(sweep.plan.kinds) < set(auto.plan.kinds)        # the sorted layers' lists
    from onespike.boards.fit import SORTED_LUTS_PER_LANE
    sorted_lanes = sum(p for p, f in zip(auto.lanes, auto.firing) if f == "sorted")
    assert auto.luts >= sweep.luts + SORTED_LUTS_PER_LANE["ice40"] * sorted_lanes
    monkeypatch.setattr(flow, "run_tools", fake_tools)
    path = save(net, tmp_path / "net.npz")
    for firing, planned in [("sweep", sweep), ("sorted", auto)]:
        summary = build(path, board, tmp_path / firing, lanes=1, firing=firing,
                        log=lambda _: None)
        assert json.loads((tmp_path / firing / "build.json").read_text()) == summary
        assert summary["firing"] == list(planned.firing)
        assert summary["memories"] == planned.plan.kinds
    for coding, firing in [("ttfs", "fast"), ("dense", "sorted")]:
        with pytest.raises(OnespikeError, match="firing must be one of|ttfs coding only"):
            build(path, board, tmp_path / "refused", coding=coding, firing=firing,
                  log=lambda _: None)
    assert not (tmp_path / "refused").exists()


def test_a_build_takes_a_plan_as_written(tmp_path, monkeypatch, capsys):
    """``onespike build --plan``: the lanes and firing a (hand-edited) plan gives, in the
    built design and build.json. Tools faked."""
    from onespike.boards import build as flow
    from onespike.cli import main

    net = random_net(8, conv=True)
    path = save(net, tmp_path / "net.npz")
    assert main(["plan", str(path), "--firing", "sweep", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    plan["options"]["firing"][0] = "sorted"
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    monkeypatch.setattr(flow, "run_tools", fake_tools)
    assert main(["build", str(path), "--board", "icebreaker", "--plan",
                 str(tmp_path / "plan.json"), "-o", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "build.json").read_text())
    assert summary["firing"] == plan["options"]["firing"]
    assert summary["lanes"] == plan["options"]["lanes"]
    # plan --board: the planner's choice, which build --plan builds as it is
    capsys.readouterr()
    assert main(["plan", str(path), "--board", "icebreaker", "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    (tmp_path / "board.json").write_text(json.dumps(planned))
    default = fit(net, board_named("icebreaker"))
    assert planned["options"]["lanes"] == list(default.lanes)
    assert planned["board"]["luts_estimated"] == default.luts
    assert main(["build", str(path), "--board", "icebreaker", "--plan",
                 str(tmp_path / "board.json"), "-o", str(tmp_path / "planned")]) == 0
    summary = json.loads((tmp_path / "planned" / "build.json").read_text())
    assert [summary[k] for k in ("lanes", "firing", "use_dsp")] == [
        planned["options"][k] for k in ("lanes", "firing", "use_dsp")]
    assert summary["memories"] == planned["board"]["memories"]


@pytest.fixture(scope="module")
def planned_builds(digits_644832_net, tmp_path_factory):
    """Default options: the digits 64-48-32-10 MLP on the iCEBreaker and a random CNN on
    the ULX3S-12F, both built from an empty working folder (which must stay empty)."""
    root = tmp_path_factory.mktemp("planned")
    cwd = root / "cwd"
    cwd.mkdir()
    jobs = {"digits-icebreaker": (digits_644832_net, "icebreaker"),
            "cnn-ulx3s": (random_net(1, conv=True), "ulx3s-12f")}
    results = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        for name, (net, board) in jobs.items():
            path = save(net, root / f"{name}.npz")
            results[name] = build(path, board_named(board), root / name, log=lambda _: None)
    return results, cwd


@pytest.mark.parametrize("name", ["digits-icebreaker", "cnn-ulx3s"])
def test_planned_networks_build_and_meet_timing(planned_builds, name):
    results, _ = planned_builds
    summary = results[name]
    board = BOARDS[summary["board"]]
    assert summary["timing_met"]
    assert summary["bram"] == summary["bram_estimate"] <= board.blocks
    assert summary["spram"] == summary["spram_planned"]


def test_a_build_leaves_nothing_outside_its_output_folder(planned_builds):
    _, cwd = planned_builds
    assert list(cwd.iterdir()) == []


def test_the_digits_644832_mlp_runs_at_more_than_one_lane(planned_builds):
    results, _ = planned_builds
    assert max(results["digits-icebreaker"]["lanes"]) > 1


@pytest.mark.slow
@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-12f"])
@pytest.mark.parametrize("seed, conv", [(4, False), (9, False), (1, True), (6, True)])
def test_every_planned_network_builds(board, seed, conv, tmp_path):
    path = save(random_net(seed, conv), tmp_path / "net.npz")
    summary = build(path, board_named(board), tmp_path / "out", log=lambda _: None)
    assert summary["bram"] == summary["bram_estimate"]


@pytest.mark.slow
def test_mnist_mlp_builds_on_icebreaker_at_four_lanes(tmp_path):
    zoo = pytest.importorskip("onespike.zoo")
    pytest.importorskip("torch")
    from onespike.mapper import convert

    mnist = zoo.idx_dataset("mnist")
    model = zoo.train(zoo.mlp([784, 128, 10]), mnist, epochs=1, batch=128, lr=1e-3)
    path = save(convert(model, mnist.x_train[:5000]), tmp_path / "mnist.npz")
    summary = build(path, board_named("icebreaker"), tmp_path / "out", lanes=4,
                    log=lambda _: None)
    assert summary["timing_met"] and summary["lanes"] == [4, 4]
    assert Path(tmp_path / "out" / "weights.bin").stat().st_size == summary["load_bytes"]


def test_fit_chooses_firing_once_per_lane_configuration(monkeypatch):
    """The planner asks for the firing of the same lanes again and again (each accelerator
    built with firing auto asks too): hdl.plan answers each configuration once."""
    import onespike.hdl.plan as top

    made, asked = [], set()
    choose, inner = top.choose_firing, top._choose_firing

    def counting_choose(net, lanes, spikes=None):
        asked.add(tuple(top.layer_lanes(net, lanes)))
        return choose(net, lanes, spikes)

    def counting_inner(net, lanes, spikes):
        made.append(tuple(lanes))
        return inner(net, lanes, spikes)

    monkeypatch.setattr(top, "choose_firing", counting_choose)
    monkeypatch.setattr(top, "_choose_firing", counting_inner)
    net = random_network(np.random.default_rng(4), conv=False, max_layers=4)
    fit(net, board_named("icebreaker"))
    assert len(made) == len(set(made)) == len(asked) > 1


def test_a_cnn_that_overflows_block_ram_gets_its_membranes_in_spram():
    """An MNIST-sized CNN (two 5x5 convolutions with max pooling, two dense layers; random
    weights, BatchNorm statistics from random inputs) on the iCEBreaker: refused by block
    RAM before single-port membranes; now planned with its largest membranes single-port in
    SPRAM, every other memory in the board's limits, and the plan's cycle model paced."""
    import torch
    import torch.nn as nn
    from onespike.mapper import convert

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 5), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 5), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10))
    calib = np.random.default_rng(0).random((256, 1, 28, 28), dtype=np.float32)
    model.train()
    with torch.no_grad():
        model(torch.as_tensor(calib))
    net = convert(model.eval(), calib)
    board = board_named("icebreaker")
    dual = LinkOptions(membranes="dual", encoder_banks=2)
    with pytest.raises(OnespikeError, match="EBR"):
        fit(net, board, link=dual)
    placed = fit(net, board)
    assert not placed.problems(board, board.luts)
    single = [r for r in placed.plan.records if r.single_port]
    assert single and all(placed.plan.kinds[r.name] == "spram" for r in single)
    assert placed.membranes[0].startswith("single")
    assert placed.stages["layer0_integrate"] == 3 * fit(
        net, board_named("ulx3s-85f"), placed.lanes, dual).stages["layer0_integrate"]


@pytest.mark.parametrize("coding", ["ttfs", "dense"])
def test_the_plan_names_the_memories_of_the_design_it_plans(digits_mlp_net, coding):
    """At the lanes the planner chooses after trying others, every memory of the board top
    built from the plan is in the plan with its shape (the dense coding's cores once came
    from the frame of the first lanes tried: its build then failed)."""
    from onespike.boards.build import planned_top
    from onespike.boards.memories import inventory
    from onespike.hdl.streams import discard

    net, _ = digits_mlp_net
    board = board_named("icebreaker")
    link = LinkOptions(coding=coding)
    placed = fit(net, board, None, link)
    built = inventory(discard(planned_top(net, placed, link, board.clock_hz)).link)
    planned = {r.name: (r.width, r.depth) for r in placed.plan.records}
    assert {r.name: (r.width, r.depth) for r in built} == planned


@pytest.mark.parametrize("coding", ["ttfs", "dense"])
@pytest.mark.parametrize("seed", [1, 2])
def test_fit_builds_one_design_for_its_memory_frame_and_sizes_the_rest(monkeypatch, seed,
                                                                      coding):
    """Every lane, firing, membrane and DSP configuration the planner tries is a plan
    (sizes only); the one design it builds gives the memories that do not depend on them
    (the host link's): one accelerator and one part per layer, whatever it tried. Seed 1 is
    a 4-layer MLP that the iCEBreaker fit tries single-port membranes and one bank for,
    seed 2 a CNN with max pooling."""
    from onespike.hdl.streams import SizedComponent

    built = []
    construct = SizedComponent.__init__

    def counting(self, *args, **kwargs):
        built.append(type(self).__name__)
        construct(self, *args, **kwargs)

    monkeypatch.setattr(SizedComponent, "__init__", counting)
    net = random_network(np.random.default_rng(seed), conv=seed == 2, max_layers=4,
                         max_width=40)
    placed = fit(net, board_named("icebreaker"), link=LinkOptions(coding=coding))
    top = "Accelerator" if coding == "ttfs" else "DenseAccelerator"
    assert built.count(top) == 1, built
    assert len(built) == 2 + len(net.layers), built      # the top, the encoder, the cores
    assert placed.plan.records           # the plan still names every memory of the design


def test_a_default_on_ecp5_keeps_its_block_ram_within_the_share(monkeypatch):
    """A default plan that takes more than BLOCK_SHARE of an ECP5's block RAM is planned
    again within it (the 784-512-256-10 MLP routed on the ULX3S-85F at 86 % and not at
    97 %); lanes asked for are built as asked; where nothing fits the share, the plan says
    so. The share is made small here so that a small network meets it."""
    from onespike.boards import fit as flow

    net = random_network(np.random.default_rng(8), conv=False, max_width=64, weight_bits=8)
    board = board_named("ulx3s-12f")
    monkeypatch.setitem(flow.BLOCK_SHARE, "ecp5", 1.0)
    full = fit(net, board)
    monkeypatch.setitem(flow.BLOCK_SHARE, "ecp5", 0.3)
    roomy = fit(net, board)
    assert roomy.plan.blocks <= 0.3 * board.blocks < full.plan.blocks
    assert "block RAM" not in roomy.reason
    assert fit(net, board, lanes=list(full.lanes)).plan.blocks == full.plan.blocks
    wide = random_network(np.random.default_rng(8), conv=False, max_width=128,
                          weight_bits=8)
    monkeypatch.setitem(flow.BLOCK_SHARE, "ecp5", 0.1)
    crowded = fit(wide, board)
    assert crowded.plan.blocks > 0.1 * board.blocks
    assert "above the planner's share of the block RAM (10%)" in crowded.reason


def test_a_default_keeps_under_the_quick_build_luts_where_a_plan_does(monkeypatch):
    """A default stays under QUICK_BUILD_LUTS estimated LUT sites where some plan does (a
    build of minutes, not of a quarter hour), and says so; lanes asked for are built as
    asked; where not even one lane does, the planner's whole share of the LUTs is used."""
    from onespike.boards import fit as flow

    net = random_network(np.random.default_rng(8), conv=False, max_width=64, weight_bits=8)
    board = board_named("ulx3s-85f")
    roomy = fit(net, board)
    monkeypatch.setattr(flow, "QUICK_BUILD_LUTS", 3000)
    quick = fit(net, board)
    assert quick.luts <= 3000 < roomy.luts and quick.steady > roomy.steady
    assert "kept under ~3,000 for a build of about ten minutes" in quick.reason
    assert fit(net, board, lanes=list(roomy.lanes)).lanes == roomy.lanes
    monkeypatch.setattr(flow, "QUICK_BUILD_LUTS", 100)
    assert fit(net, board).lanes == roomy.lanes
