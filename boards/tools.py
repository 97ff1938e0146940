"""Running the YoWASP tools of a build and reading what they report: yosys' cell counts,
nextpnr's utilisation, and failures told apart (the device too full, a tool's own fault,
a crash run once more)."""

import re
import subprocess
import time

from onespike.boards.platforms import Board, tool_environment
from onespike.errors import OnespikeError

__all__ = ["BuildFailed", "NAME", "STAT_CELLS", "synth_counts", "utilisation", "run_tools"]

NAME = "onespike"

# yosys `stat` cell names per family: block RAM, distributed RAM, SPRAM, LUTs
STAT_CELLS = {
    "ice40": {"block": r"SB_RAM40_4K", "distributed": r"$^", "spram": r"SB_SPRAM256KA",
              "luts": r"SB_LUT4", "dsp": r"SB_MAC16"},
    "ecp5": {"block": r"DP16KD|PDPW16KD", "distributed": r"TRELLIS_DPR16X4", "spram": r"$^",
             "luts": r"LUT4", "dsp": r"MULT18X18D"},
    "gowin": {"block": r"(SDP|DP|SP|pROM)X?9?B?|SDPB|DPB|SPX9|pROMX9",
              "distributed": r"RAM16SDP\d", "spram": r"$^", "luts": r"LUT[1-4]",
              "dsp": r"MULT\w+"},
}


class BuildFailed(OnespikeError):
    """The tools ran but the design did not fit or did not meet timing (``misfit``: place
    and route found the device too full)."""
    misfit = False


def _count(pattern, text):
    """Sum of yosys ``stat`` counts of the cells whose name matches ``pattern`` (the last
    stat in the log is the final netlist)."""
    final = text[text.rfind(" cells\n"):]
    return sum(int(n) for n, cell in re.findall(r"^\s+(\d+)\s+(\S+)\s*$", final, re.M)
               if re.fullmatch(pattern, cell))


def synth_counts(board: Board, synth_log: str) -> dict:
    """Block RAMs, distributed-RAM units, SPRAMs, LUTs and DSP blocks in yosys' final
    ``stat``."""
    return {kind: _count(pattern, synth_log) for kind, pattern in
            STAT_CELLS[board.family].items()}


def utilisation(board: Board, report: dict, synth_log: str) -> dict:
    """What place and route used; ``lut_sites`` are the LUT sites it filled (iCE40 logic
    cells, ECP5 TRELLIS_COMB: LUT4, carry halves and LUT RAM; Gowin LUT4 and ALU), the
    count the planner's LUT estimate stands for."""
    used = {k: v["used"] for k, v in report["utilization"].items()}
    if board.family == "ice40":
        return {"luts": _count(r"SB_LUT4", synth_log), "ffs": _count(r"SB_DFF\w*", synth_log),
                "logic_cells": used["ICESTORM_LC"], "lut_sites": used["ICESTORM_LC"],
                "bram": used["ICESTORM_RAM"], "spram": used["ICESTORM_SPRAM"],
                "dsp": used["ICESTORM_DSP"]}
    if board.family == "ecp5":
        return {"luts": _count(r"LUT4", synth_log), "ffs": used["TRELLIS_FF"],
                "lut_sites": used["TRELLIS_COMB"],
                "lutram_slices": used["TRELLIS_RAMW"], "bram": used["DP16KD"], "spram": 0,
                "dsp": used.get("MULT18X18D", 0)}
    return {"luts": used["LUT4"], "ffs": used["DFF"],
            "lut_sites": used["LUT4"] + used.get("ALU", 0),
            "lutram_slices": used["RAM16SDP4"], "bram": used["BSRAM"], "spram": 0,
            "dsp": sum(v for k, v in used.items() if k.startswith("MULT"))}


def _ending(build_log):
    """``", the log ends: <its last line>"``, or nothing for an empty log."""
    lines = [line.strip() for line in build_log.splitlines() if line.strip()]
    return f", the log ends: {lines[-1]}" if lines else ""


def run_tools(board, root, log, crash_retries=1):
    """Run the build script; a tool that stops without an ``ERROR`` line (a crash, not a
    reported error) is run again, up to ``crash_retries`` times."""
    env = tool_environment()
    started = time.monotonic()
    for attempt in range(crash_retries + 1):
        with open(root / "build.log", "w") as output:
            result = subprocess.run(["sh", f"build_{NAME}.sh"], cwd=root, env=env,
                                    stdout=output, stderr=subprocess.STDOUT)
        build_log = (root / "build.log").read_text(errors="replace")
        synthesis = root / f"{NAME}.rpt"          # yosys -q keeps some errors to its log
        errors = [line.strip() for text in (synthesis.read_text(errors="replace")
                                            if synthesis.is_file() else "", build_log)
                  for line in text.splitlines() if "ERROR" in line]
        if result.returncode == 0 or errors or attempt == crash_retries:
            break
        log(f"the tools stopped without an error message (exit status "
            f"{result.returncode}{_ending(build_log)}); running them again")
    seconds = time.monotonic() - started
    if result.returncode != 0:
        reason = errors[-1] if errors else \
            f"exit status {result.returncode}{_ending(build_log)}"
        misfit = any(k in reason for k in ("utilisation", "legal placement", "expand region",
                                           "no BELs remaining"))
        if misfit:
            reason = "the design does not fit the device: " + reason
        failure = BuildFailed(f"building for {board.name} failed (this place-and-route "
                              f"attempt: {seconds:.0f} s): "
                              f"{reason} (full log: {root / 'build.log'})")
        failure.misfit = misfit
        failure.fault = not errors or any("Assert" in e for e in errors)   # the tool's own
        raise failure
    return seconds
