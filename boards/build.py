"""``onespike build``: a bitstream for a board with the YoWASP tools from PyPI, its
utilisation and the Fmax nextpnr achieved, refused up front when the memories cannot fit."""

import json
import re
import shutil
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from onespike import ir
from onespike.boards.clocks import pll_for
from onespike.boards.memories import SpramPlan, inventory, load_image, plan_spram
from onespike.boards.platforms import Board, tool_environment
from onespike.boards.top import DEFAULT_BAUD, BoardTop
from onespike.errors import OnespikeError
from onespike.hdl.streams import discard

__all__ = ["build", "fit", "Fit", "BuildFailed"]

NAME = "onespike"
WEIGHTS = "weights.bin"       # run-time weights (SPRAM), sent by `onespike run`


@dataclass(frozen=True)
class Fit:
    spram_plan: SpramPlan     # weight memories in SPRAM (iCE40 UltraPlus)
    styles: dict              # memory number → yosys ram_style override
    sliced: frozenset         # weight memory numbers kept one bit wide per block
    blocks: int               # block RAMs expected
    bits: int                 # memory bits of the design


class BuildFailed(OnespikeError):
    """The tools ran but the design did not fit or did not meet timing."""


def _count(pattern, text):
    """Sum of yosys ``stat`` counts of the cells whose name matches ``pattern`` (the last
    stat in the log is the final netlist)."""
    final = text[text.rfind(" cells\n"):]
    return sum(int(n) for n, cell in re.findall(r"^\s+(\d+)\s+(\S+)\s*$", final, re.M)
               if re.fullmatch(pattern, cell))


def _utilisation(board: Board, report: dict, synth_log: str) -> dict:
    used = {k: v["used"] for k, v in report["utilization"].items()}
    if board.family == "ice40":
        return {"luts": _count(r"SB_LUT4", synth_log), "ffs": _count(r"SB_DFF\w*", synth_log),
                "logic_cells": used["ICESTORM_LC"], "bram": used["ICESTORM_RAM"],
                "spram": used["ICESTORM_SPRAM"], "dsp": used["ICESTORM_DSP"]}
    if board.family == "ecp5":
        return {"luts": _count(r"LUT4", synth_log), "ffs": used["TRELLIS_FF"],
                "lutram_slices": used["TRELLIS_RAMW"], "bram": used["DP16KD"], "spram": 0,
                "dsp": used.get("MULT18X18D", 0)}
    return {"luts": used["LUT4"], "ffs": used["DFF"], "lutram_slices": used["RAM16SDP4"],
            "bram": used["BSRAM"], "spram": 0,
            "dsp": sum(v for k, v in used.items() if k.startswith("MULT"))}


def fit(net, board: Board, lanes, baud=DEFAULT_BAUD):
    """How ``net``'s memories go on ``board`` (:class:`Fit`); raises when they cannot fit
    (before any tool runs)."""
    memories = inventory(discard(BoardTop(net, lanes=lanes, clock_hz=board.clock_hz,
                                          baud=baud)).link)

    def cost(record):
        return board.block_ram.blocks(record.width, record.depth)

    plan = SpramPlan(())
    if board.spram:
        plan = plan_spram(memories, sprams=board.spram, blocks_free=board.blocks,
                          block_cost=cost)
    in_spram = {id(r) for _, r, _ in plan.entries}
    blocks = sum(cost(r) for r in memories if id(r) not in in_spram)
    bits = sum(r.bits for r in memories)
    # weights deeper than one block: one 1-bit-wide memory per bit when the blocks are
    # there, which saves the wide read mux of blocks cascaded in depth
    sliced = set()
    if board.block_ram.deepest:
        weights = [r for r in memories if r.weights]
        for number, record in enumerate(weights):
            if id(record) in in_spram or record.depth <= board.block_ram.shapes[0][1]:
                continue
            extra = record.width * -(-record.depth // board.block_ram.deepest) - cost(record)
            if blocks + extra <= board.blocks:
                sliced.add(number)
                blocks += extra
    # spare block RAM takes the memories that would otherwise be built from logic,
    # largest first (on iCE40 a 256-bit memory in flip-flops costs ~400 logic cells)
    styles = {}
    small = [(n, r) for n, r in enumerate(memories)
             if board.block_ram.style(r.width, r.depth) == "logic"]
    for n, record in sorted(small, key=lambda nr: -nr[1].bits):
        extra = board.block_ram.packed(record.width, record.depth)
        if blocks + extra <= board.blocks:
            styles[n] = "block"
            blocks += extra
    if blocks > board.blocks:
        also = f" once {plan.sprams} SPRAMs hold weights" if board.spram else ""
        raise OnespikeError(
            f"the network at {lanes} lane(s) does not fit {board.name}: its memories "
            f"({bits / 1024:.0f} kbit) need about {blocks} {board.block_ram.name} "
            f"blocks{also}, and the {board.device} has {board.blocks}; try fewer --lanes "
            f"or a larger board")
    return Fit(plan, styles, frozenset(sliced), blocks, bits)


def build(net_path, board: Board, out_dir, *, lanes=None, baud=DEFAULT_BAUD, clock_mhz=None,
          log=print) -> dict:
    """Build ``net_path`` for ``board`` into ``out_dir``; returns the report (also written
    to ``out_dir/build.json``). Raises :class:`OnespikeError` before running any tool when
    the memories cannot fit, :class:`BuildFailed` when place and route fails or timing is
    not met (the bitstream is then still written, the report says so). ``clock_mhz`` other
    than the board's oscillator puts a PLL in front of the design."""
    clock_hz, pll = board.clock_hz, None
    if clock_mhz is not None and abs(clock_mhz * 1e6 - board.clock_hz) > 1:
        pll = pll_for(board.family, board.clock_hz, clock_mhz * 1e6)
        clock_hz = round(pll.f_out)
    net = ir.load(net_path)
    lanes = board.default_lanes if lanes is None else lanes
    placed = fit(net, board, lanes, baud)
    plan, blocks, bits = placed.spram_plan, placed.blocks, placed.bits
    top = BoardTop(net, lanes=lanes, clock_hz=clock_hz, baud=baud, spram_plan=plan,
                   styles=placed.styles, sliced=placed.sliced, pll=pll)
    env = tool_environment()
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
        build_plan = board.create_platform().build(top, name=NAME, do_build=False,
                                                   nextpnr_opts=options)
    root.mkdir(parents=True)
    for name, content in build_plan.files.items():     # BuildPlan.extract would chdir
        (root / name).write_bytes(content.encode() if isinstance(content, str) else content)
    log(f"building {net_path} for {board.name} ({board.device}) at {lanes} lane(s): "
        f"synthesis, place and route, packing (a few minutes; log in {root}/build.log)")
    started = time.monotonic()
    with open(root / "build.log", "w") as output:
        result = subprocess.run(["sh", f"build_{NAME}.sh"], cwd=root, env=env,
                                stdout=output, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - started
    build_log = (root / "build.log").read_text(errors="replace")
    if result.returncode != 0:
        errors = [line.strip() for line in build_log.splitlines() if "ERROR" in line]
        reason = errors[-1] if errors else f"exit status {result.returncode}"
        if any(k in reason for k in ("utilisation", "legal placement", "expand region")):
            reason = "the design does not fit the device: " + reason
        raise BuildFailed(f"building for {board.name} failed after {seconds:.0f} s: {reason} "
                          f"(full log: {root / 'build.log'})")
    report = json.loads((root / "report.json").read_text())
    (fmax_entry,) = report["fmax"].values()       # the design has one clock
    fmax = float(fmax_entry["achieved"])
    shutil.copyfile(root / board.bitstream_name, out_dir / board.bitstream_name)
    shutil.copyfile(net_path, out_dir / "network.npz")
    if plan.load_bytes:
        (out_dir / WEIGHTS).write_bytes(load_image(plan))
    summary = {
        "board": board.name, "device": board.device, "network": str(net_path),
        "bitstream": str(out_dir / board.bitstream_name),
        "lanes": list(top.link.accelerator.lanes), "clock_mhz": clock_hz / 1e6,
        "pll": pll is not None, "fmax_mhz": round(fmax, 2),
        "timing_met": fmax >= clock_hz / 1e6,
        "baud": baud, "checksum": f"{top.link.identity.checksum:08x}",
        **_utilisation(board, report, (root / f"{NAME}.rpt").read_text(errors="replace")),
        "bram_available": board.blocks, "luts_available": board.luts,
        "memory_bits": bits, "bram_estimate": blocks, "spram_planned": plan.sprams,
        "load_bytes": plan.load_bytes,
        "build_seconds": round(seconds, 1),
    }
    (out_dir / "build.json").write_text(json.dumps(summary, indent=1) + "\n")
    if not summary["timing_met"]:
        advice = "a lower --clock" if pll else "fewer --lanes"
        raise BuildFailed(f"timing not met on {board.name}: Fmax {fmax:.1f} MHz, the board "
                          f"clock is {clock_hz / 1e6:g} MHz; try {advice} "
                          f"(bitstream and report written to {out_dir})")
    return summary
