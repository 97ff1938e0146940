"""``onespike build``: a bitstream for a board with the YoWASP tools from PyPI, its
utilisation and the Fmax nextpnr achieved, refused up front when the memories cannot fit.
The planner is :mod:`~onespike.boards.fit`, the tools :mod:`~onespike.boards.tools`."""

import json
import re
import shutil
import subprocess
import time
import warnings
from pathlib import Path

from onespike import ir
from onespike.boards.clocks import pll_for
from onespike.boards.fit import LUT_SHARE, Fit, LinkOptions, _lanes_text, fit
from onespike.boards.memories import load_image
from onespike.boards.platforms import Board, tool_environment
from onespike.boards.tools import (NAME, BuildFailed, run_tools, utilisation,
                                   synth_counts)
from onespike.boards.top import DEFAULT_BAUD, BoardTop

__all__ = ["build", "synthesize", "fit", "Fit", "LinkOptions", "BuildFailed", "synth_counts",
           "planned_top"]

WEIGHTS = "weights.bin"       # run-time weights (SPRAM), sent by `onespike run`


def _clock(board, clock_mhz):
    """``(clock_hz, pll)``: the oscillator, or a PLL when ``clock_mhz`` differs."""
    if clock_mhz is not None and abs(clock_mhz * 1e6 - board.clock_hz) > 1:
        pll = pll_for(board.family, board.clock_hz, clock_mhz * 1e6)
        return round(pll.f_out), pll
    return board.clock_hz, None


def planned_top(net, placed: Fit, link: LinkOptions, clock_hz, pll=None) -> BoardTop:
    """The board top that ``placed`` (a :func:`fit`) describes: its lanes, DSP use, firing,
    membranes, encoder banks and memory plan, the rest from ``link``."""
    ttfs = link.coding == "ttfs"
    return BoardTop(net, lanes=list(placed.lanes), clock_hz=clock_hz,
                    **{**link.options, "use_dsp": placed.use_dsp,
                       "firing": list(placed.firing) if ttfs else "auto",
                       "membranes": list(placed.membranes) if ttfs else "dual",
                       "encoder_banks": placed.encoder_banks},
                    memory_plan=placed.plan, pll=pll)


def _prepare(net, board, out_dir, lanes, link, clock_mhz, log, lut_share=LUT_SHARE):
    """Plan, elaborate and write the tool scripts into ``out_dir/build`` (nothing
    elsewhere); returns ``(fit, top, root, clock_hz, pll)``."""
    clock_hz, pll = _clock(board, clock_mhz)
    planning = time.monotonic()
    placed = fit(net, board, lanes, link, lut_share)
    log(f"{_lanes_text(placed.lanes)}, planned in {time.monotonic() - planning:.1f} s: "
        f"{placed.reason}")
    top = planned_top(net, placed, link, clock_hz, pll)
    out_dir = Path(out_dir)
    root = out_dir / "build"
    if root.exists():
        shutil.rmtree(root)
    for stale in (out_dir / board.bitstream_name, out_dir / "build.json", out_dir / WEIGHTS):
        stale.unlink(missing_ok=True)
    options = "--report report.json --timing-allow-fail"
    if board.family == "gowin":          # its constraint file carries no clock
        options += f" --freq {clock_hz / 1e6:g}"
    with warnings.catch_warnings():
        # amaranth 0.5's own default-clock code still requests its pin the old way
        warnings.filterwarnings("ignore", "Using platform.request without", DeprecationWarning)
        extra = {"synth_opts": "-dsp"} if placed.dsps and board.family == "ice40" \
            else {}                               # synth_ice40 maps SB_MAC16 only when asked
        build_plan = board.create_platform().build(top, name=NAME, do_build=False,
                                                   nextpnr_opts=options, **extra)
    root.mkdir(parents=True)
    for name, content in build_plan.files.items():     # BuildPlan.extract would chdir
        (root / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return placed, top, root, clock_hz, pll


def synthesize(net, board: Board, out_dir, *, lanes=None, link=LinkOptions(),
               log=print) -> dict:
    """Synthesis only (no place and route): ``{"fit": Fit, "stat": synth_counts(...),
    "mapped": {memory name: yosys cell or "FF"}}``, for checking the plan against yosys."""
    placed, _, root, _, _ = _prepare(net, board, out_dir, lanes, link, None, log)
    env = tool_environment()
    result = subprocess.run([env["YOSYS"], "-q", "-l", f"{NAME}.rpt", f"{NAME}.ys"],
                            cwd=root, env=env, capture_output=True, text=True)
    text = (root / f"{NAME}.rpt").read_text(errors="replace")
    if result.returncode != 0:
        raise BuildFailed(f"synthesis for {board.name} failed (log: {root / NAME}.rpt)")
    mapped = dict(re.findall(rf"mapping memory {NAME}\.link\.(\S+) via (\S+)", text))
    mapped.update((name, "FF") for name in
                  re.findall(rf"using FF mapping for memory {NAME}\.link\.(\S+)", text))
    return {"fit": placed, "stat": synth_counts(board, text), "mapped": mapped}


def _place(net, board, out_dir, lanes, link, clock_mhz, log, retries=2):
    """Plan and run the tools; when the planner chose the lanes and place and route still
    finds the device too full (the LUT estimate is a fit, not a count), or a tool fails on
    an internal fault (a failed assertion or a crash, seen in yosys 0.70's ABC9 pass on
    some netlists: other lanes give another netlist), plan again with a smaller share of
    the LUTs, at most ``retries`` times. Returns ``_prepare``'s tuple and the tools'
    seconds."""
    share = LUT_SHARE
    for attempt in range(retries + 1):
        prepared = _prepare(net, board, out_dir, lanes, link, clock_mhz, log, share)
        try:
            return (*prepared, run_tools(board, prepared[2], log))
        except BuildFailed as failure:
            if failure.misfit and lanes is not None:
                estimate = prepared[0].luts
                raise BuildFailed(f"{failure}; the planner estimated ~{estimate} of "
                                  f"{board.luts} LUTs for --lanes {lanes}, an estimate "
                                  f"that place and route did not bear out: build without "
                                  f"--lanes (the planner then retries with fewer lanes) "
                                  f"or ask for fewer lanes") from None
            if not failure.misfit and (lanes is not None or not getattr(failure, "fault", 0)
                                       or attempt == retries):
                raise BuildFailed(f"{failure}; the tools stopped on an error that is not a "
                                  f"lack of room: the log names it (a different netlist, "
                                  f"e.g. --no-dsp or other --lanes, may avoid a tool "
                                  f"fault)") from None
            if attempt == retries:
                fewer = max(1, max(prepared[0].lanes) // 2)
                failure = BuildFailed(f"{failure}; {retries + 1} plans, each within fewer "
                                      f"LUTs, were too full for place and route: ask for "
                                      f"fewer lanes (e.g. --lanes {fewer}) or use a larger "
                                      f"board")
                failure.misfit = True
                raise failure from None
            share *= 0.8
            log((f"place and route found {board.name} too full" if failure.misfit else
                 f"the tools failed on a fault of their own") + f" at lanes "
                f"{list(prepared[0].lanes)}; planning again within {share:.0%} of the LUTs")


def build(net_path, board: Board, out_dir, *, lanes=None, baud=DEFAULT_BAUD, clock_mhz=None,
          coding="ttfs", use_dsp=True, firing="auto", membranes="auto", encoder_banks="auto",
          log=print) -> dict:
    """Build ``net_path`` for ``board`` into ``out_dir``; returns the report (also written
    to ``out_dir/build.json``). ``lanes`` (one count or one per layer) or, by default, the
    fastest configuration that fits (:func:`fit`). Raises :class:`OnespikeError` before
    running any tool when the design cannot fit, :class:`BuildFailed` when place and route
    fails or timing is not met (the bitstream is then still written, the report says so).
    ``clock_mhz`` other than the board's oscillator puts a PLL in front of the design.
    ``coding``, ``use_dsp``, ``firing``, ``membranes``, ``encoder_banks``: the accelerator
    (:class:`LinkOptions`). Everything is written below ``out_dir``."""
    firing, membranes = (v if isinstance(v, str) else tuple(v) for v in (firing, membranes))
    link = LinkOptions(baud, coding, use_dsp, firing, membranes,      # impossible ones
                       encoder_banks)                                 # are refused
    _clock(board, clock_mhz)                             # first, then an impossible clock
    net = ir.load(net_path)
    started = time.monotonic()
    log(f"building {net_path} for {board.name} ({board.device}): planning (seconds), then "
        f"synthesis, place and route, packing (minutes; log in "
        f"{Path(out_dir)}/build/build.log)")
    try:
        placed, top, root, clock_hz, pll, seconds = _place(net, board, out_dir, lanes, link,
                                                           clock_mhz, log)
    except BuildFailed as failure:
        whole = BuildFailed(f"{failure} [the build ran {time.monotonic() - started:.0f} s "
                            f"in all]")
        whole.misfit = failure.misfit
        raise whole from None
    out_dir, plan = Path(out_dir), placed.plan
    report = json.loads((root / "report.json").read_text())
    (fmax_entry,) = report["fmax"].values()       # the design has one clock
    fmax = float(fmax_entry["achieved"])
    shutil.copyfile(root / board.bitstream_name, out_dir / board.bitstream_name)
    shutil.copyfile(net_path, out_dir / "network.npz")
    if plan.spram_plan.load_bytes:
        (out_dir / WEIGHTS).write_bytes(load_image(plan.spram_plan))
    summary = {
        "board": board.name, "device": board.device, "network": str(net_path),
        "bitstream": str(out_dir / board.bitstream_name),
        "coding": coding, "dsp_planned": placed.dsps,
        "use_dsp": placed.use_dsp if isinstance(placed.use_dsp, bool) else list(placed.use_dsp),
        "firing": list(top.link.accelerator.firing),
        "membranes": list(getattr(top.link.accelerator, "membranes", ())),
        "encoder_banks": getattr(getattr(top.link.accelerator, "encoder", None), "banks", 2),
        "lanes": list(top.link.accelerator.lanes), "lanes_reason": placed.reason,
        "clock_mhz": clock_hz / 1e6, "pll": pll is not None, "fmax_mhz": round(fmax, 2),
        "timing_met": fmax >= clock_hz / 1e6,
        "baud": baud, "checksum": f"{top.link.identity.checksum:08x}",
        **utilisation(board, report, (root / f"{NAME}.rpt").read_text(errors="replace")),
        "bram_available": board.blocks, "luts_available": board.luts,
        "memory_bits": plan.bits, "bram_estimate": plan.blocks,
        "lutram_estimate": plan.lutram, "luts_estimate": placed.luts,
        "spram_planned": plan.sprams, "load_bytes": plan.spram_plan.load_bytes,
        "memories": plan.kinds, "cycles_per_sample": placed.steady,
        "sequence_steps": net.steps,       # a sample is a sequence of that many steps
        "build_seconds": round(seconds, 1),
    }
    (out_dir / "build.json").write_text(json.dumps(summary, indent=1) + "\n")
    if not summary["timing_met"]:
        advice = "a lower --clock" if pll else "fewer --lanes"
        raise BuildFailed(f"timing not met on {board.name}: Fmax {fmax:.1f} MHz, the board "
                          f"clock is {clock_hz / 1e6:g} MHz; try {advice} "
                          f"(bitstream and report written to {out_dir})")
    return summary
