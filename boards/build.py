"""``onespike build``: a bitstream for a board with the YoWASP tools from PyPI, its
utilisation and the Fmax nextpnr achieved, refused up front when the memories cannot fit."""

import json
import math
import re
import shutil
import subprocess
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from onespike import ir
from onespike.ir import Recurrent, signed_bits
from onespike.boards.capacity import (capacity_text, fewer_weight_bits, floor_of,
                                      larger_boards, shortfall)
from onespike.boards.clocks import pll_for
from onespike.boards.memories import (MemoryPlan, load_image, plan_memories, sized_inventory,
                                      skeleton)
from onespike.boards.platforms import Board, tool_environment
from onespike.boards.top import DEFAULT_BAUD, BoardTop
from onespike.errors import OnespikeError
from onespike.hdl.cycles import cycle_estimate
from onespike.hdl.dense_cycles import dense_cycle_estimate
from onespike.hdl.generate import accelerator, check_firing, check_membranes
from onespike.hdl.streams import discard
from onespike.hdl.top import layer_lanes, more_lanes, stage_layer

__all__ = ["build", "synthesize", "fit", "Fit", "LinkOptions", "BuildFailed", "synth_counts"]

NAME = "onespike"
WEIGHTS = "weights.bin"       # run-time weights (SPRAM), sent by `onespike run`


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
LUT_SHARE = 0.85        # the planner keeps estimated LUTs under this share of the device
TIGHT_SHARE = 0.92      # ... or, when nothing fits so, at one lane under this one (an
                        # iCE40 CNN estimated at 96 % did not place; at 81 % it did)


@dataclass(frozen=True)
class Fit:
    """A lane configuration and memory plan for a board."""
    lanes: tuple              # per layer
    plan: MemoryPlan          # where each memory goes, by name
    luts: int                 # estimated LUT4 (iCE40: logic cells) of the whole design
    steady: int               # cycles per sample back to back (hdl.cycles model)
    stages: dict = None       # cycles per stage (cycle model)
    reason: str = ""          # how the lanes were chosen
    dsps: int = 0             # DSP multipliers the design asks for
    use_dsp: bool = False     # the lane multiplies in DSP blocks (else shifted adds)
    firing: tuple = ()        # per layer: "sorted", "sweep" or None (no firing phase)
    membranes: tuple = ()     # per layer: hdl.top.FORMS or None (no membranes to choose)
    encoder_banks: int = 2    # the input encoder's list banks

    @property
    def spram_plan(self):
        return self.plan.spram_plan

    @property
    def blocks(self):
        return self.plan.blocks

    @property
    def bits(self):
        return self.plan.bits

    def problems(self, board, lut_budget) -> list:
        """What does not fit: one ``needed vs available`` phrase per resource."""
        needs = [(self.plan.blocks, board.blocks, board.block_ram.name + " blocks"),
                 (self.plan.lutram, board.lutram_units, "LUT-RAM units"),
                 (self.plan.sprams, board.spram, "SPRAMs"),
                 (self.luts, lut_budget, "LUTs (estimated)"),
                 (self.dsps, board.dsps, "DSP multipliers (--no-dsp builds them from LUTs)")]
        return [f"{need} {what} needed, {have} available" for need, have, what in needs
                if need > have]


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


# LUT sites of the logic that is not memory, per family: a fixed part (UART, link, encoder,
# argmax), per weighted layer its control, and per lane and membrane bit the datapath
# (shift-add multiply, membrane adder, sign test). Fitted by least squares to yosys `stat`
# (LUT4, plus carry cells where they take a LUT site: Gowin ALU, ECP5 CCU2C as two) of
# 64-64-10, 64-48-32-10 and a digits CNN at 1 to 16 lanes (bench/lut_model.py).
LOGIC_FIT = {            # (fixed, per layer, per dense lane·bit, per conv lane·bit)
    "ice40": (260, 390, 15.1, 27.0),
    "ecp5": (340, 570, 9.5, 11.0),
    "gowin": (900, 300, 10.4, 19.0),
}


# LUT sites per lane that sorted firing adds to a core (hdl/firing.py: the step from the
# reciprocal, the list heads' addresses and data, the walk): +783 LUT4 measured on ECP5 for
# the MNIST CNN's first convolution at 8 lanes (bench/compare.py, ttfs vs ttfs-sweep); the
# other families scaled by their conv lane·bit fits against ECP5's
SORTED_LUTS_PER_LANE = {"ecp5": 100, "ice40": 245, "gowin": 170}


def _core_luts(net, lanes, family, firing=()) -> int:
    """LUT sites of the logic that is not memory (:data:`LOGIC_FIT`, and
    :data:`SORTED_LUTS_PER_LANE` for the layers whose ``firing`` is sorted)."""
    fixed, per_layer, dense, conv = LOGIC_FIT[family]
    luts = fixed
    for layer, width, p in zip(net.layers, net.widths(), lanes):
        if hasattr(layer, "weight"):
            luts += per_layer + p * width.membrane_bits * (conv if layer.kind == "conv"
                                                           else dense)
    luts += sum(SORTED_LUTS_PER_LANE[family] * p
                for p, f in zip(lanes, firing) if f == "sorted")
    return int(luts)


# LUT sites per lane of the dense baseline's MAC core relative to the TTFS core's
# (bench/lut_model.py --coding dense): its multiplier by the activation (shifted adds
# without DSP blocks), the accumulator and the requantizing divider
DENSE_LUTS = {True: 1.0, False: 1.25}         # by use_dsp (measured 0.93-1.22 without)


@dataclass(frozen=True)
class LinkOptions:
    """What goes behind the host link besides the network: the UART rate and the
    accelerator (``coding`` ttfs or dense; ``use_dsp``: its lane multiplies may take DSP
    blocks; ``firing``: how the TTFS hidden layers find their spikes, one of
    :data:`~onespike.hdl.firing.FIRINGS`, resolved per layer at the lanes planned;
    ``membranes``: ``dual``, ``single`` (:data:`~onespike.hdl.top.MEMBRANES`), one per
    layer, or ``auto``: dual unless the board's block RAM runs short and it has SPRAM, then
    single-port in SPRAM for the largest membranes until the memories fit)."""
    baud: int = DEFAULT_BAUD
    coding: str = "ttfs"
    use_dsp: bool = True
    firing: str = "auto"
    membranes: str = "auto"
    encoder_banks: object = "auto"

    def __post_init__(self):
        check_firing(self.coding, self.firing)
        if self.coding == "dense" and self.membranes not in ("auto", "dual"):
            check_membranes(self.coding, self.membranes)

    @property
    def resolved(self):
        """These options with ``membranes="auto"`` as dual everywhere and
        ``encoder_banks="auto"`` as 2."""
        return replace(self, membranes="dual" if self.membranes == "auto" else self.membranes,
                       encoder_banks=2 if self.encoder_banks == "auto" else self.encoder_banks)

    @property
    def options(self) -> dict:
        resolved = self.resolved
        return {"baud": self.baud, "coding": self.coding, "use_dsp": self.use_dsp,
                "firing": self.firing, "membranes": resolved.membranes,
                "encoder_banks": resolved.encoder_banks}

    def accelerator(self, net, lanes):
        resolved = self.resolved
        return accelerator(net, lanes=lanes, coding=self.coding, use_dsp=self.use_dsp,
                           firing=self.firing, membranes=resolved.membranes,
                           encoder_banks=resolved.encoder_banks)

    def cycles(self, accelerator) -> dict:
        if self.coding == "dense":
            return dense_cycle_estimate(accelerator)
        return cycle_estimate(accelerator)

    def logic_luts(self, net, lanes, family, firing=()) -> int:
        luts = _core_luts(net, lanes, family, firing)
        if self.coding == "dense":
            fixed = _core_luts(net, [0] * len(lanes), family)
            luts = fixed + int((luts - fixed) * DENSE_LUTS[self.use_dsp])
        return luts

    def dsps(self, accelerator) -> int:
        """DSP blocks of ``accelerator``'s lane multiplies with ``use_dsp``."""
        return accelerator.multipliers if self.use_dsp else 0

    def sized(self, net, lanes):
        """The accelerator at ``lanes``, built for its sizes only (never elaborated)."""
        accelerator = self.accelerator(net, list(lanes))
        for part in [accelerator, accelerator.encoder, accelerator.argmax, *accelerator.cores]:
            discard(part)
        return accelerator


_MEMO = {}     # (function, id(net), arguments) -> (net, result), for one fit() call


def _memo(function):
    """``function(net, ...)`` computed once per network and arguments within a
    :func:`fit` call (the planner asks for the same lane configurations again and again)."""
    def cached(net, *args):
        key = (function.__name__, id(net), *(tuple(a) if isinstance(a, list) else a
                                             for a in args))
        hit = _MEMO.get(key)
        if hit is None or hit[0] is not net:
            hit = _MEMO[key] = (net, function(net, *args))
        return hit[1]
    return cached


def _frame(net, spike_cycles, link, top):
    """The design's memories but the neuron cores' (:func:`~.memories.skeleton`), once per
    network, link and encoder form: the rest does not depend on the lanes."""
    key = ("_frame", id(net), spike_cycles, link)
    if key not in _MEMO or _MEMO[key][0] is not net:
        _MEMO[key] = (net, skeleton(top))
    return _MEMO[key][1]


def _plan(net, board, lanes, link, lut_budget) -> Fit:
    """The fit at ``lanes``, with ``membranes="auto"`` and ``encoder_banks="auto"``
    resolved: dual-port membranes and two encoder banks; where that does not fit a board
    with SPRAM, the largest membranes single-port, one layer more at a time, until it fits
    (each such layer takes :data:`~onespike.hdl.single_port.PACE` times the cycles), then
    the largest with one bank (half the memory; the layer's integration and firing in
    turn), then the encoder with one bank; then, what the fit does not need undone: the
    single-port layers whose RAM the plan leaves in block RAM dual again, and two banks
    wherever they still fit."""
    if link.coding != "ttfs" or (link.membranes, link.encoder_banks) != ("auto", "auto"):
        return _plan_at(net, board, lanes, link.resolved, lut_budget)
    placed = _plan_at(net, board, lanes, link.resolved, lut_budget)
    if not board.spram or not placed.problems(board, lut_budget):
        return placed
    sizes = _membrane_bits(net, tuple(placed.lanes), link.resolved)
    config = {"membranes": [None if m is None else "dual" for m in placed.membranes],
              "encoder_banks": 2}

    def trial():
        return _plan_at(net, board, lanes, replace(
            link, membranes=tuple(config["membranes"]), encoder_banks=config["encoder_banks"]),
            lut_budget)

    frugal = _plan_at(net, board, lanes, replace(       # all of it at once: does any fit?
        link, membranes=tuple(m and "single-one-bank" for m in config["membranes"]),
        encoder_banks=1), lut_budget)
    if frugal.problems(board, lut_budget):
        return frugal

    def changes():
        order = sorted((n for n, b in enumerate(sizes) if b), key=lambda n: -sizes[n])
        for form in ("single", "single-one-bank"):    # SPRAM first, then half the banks
            for n in order:
                config["membranes"][n] = form
                yield
        config["encoder_banks"] = 1
        yield

    for _ in changes():
        placed = trial()
        if not placed.problems(board, lut_budget):
            break
    else:
        return placed
    undo = [(n, "single", "dual") for n, record in enumerate(_single_port_records(placed))
            if record is not None and placed.plan.kinds[record] != "spram"]
    undo += [(n, "-one-bank", "") for n, m in enumerate(config["membranes"])
             if m and "one-bank" in m]
    for n, old, new in undo + [("encoder", 1, 2)]:
        if n == "encoder":
            if config["encoder_banks"] == 2:
                continue
            config["encoder_banks"] = 2
        else:
            config["membranes"][n] = config["membranes"][n].replace(old, new)
        attempt = trial()
        if attempt.problems(board, lut_budget):
            if n == "encoder":
                config["encoder_banks"] = 1
            else:
                config["membranes"][n] = config["membranes"][n].replace(new, old) \
                    if new else config["membranes"][n] + old
        else:
            placed = attempt
    return placed


@_memo
def _membrane_bits(net, lanes, link) -> list:
    """Per layer the bits of the membranes that may be single-port (0: none)."""
    top = link.sized(net, list(lanes))
    return [core.state_memory_bits if m is not None else 0
            for core, m in zip(top.cores, top.membranes)]


@_memo
def _plan_at(net, board, lanes, link, lut_budget) -> Fit:
    top = discard(BoardTop(net, lanes=lanes, clock_hz=board.clock_hz, **link.options))
    lanes = tuple(top.link.accelerator.lanes)
    core = link.logic_luts(net, lanes, board.family, top.link.accelerator.firing)
    frame = _frame(net, getattr(top.link.accelerator.encoder, "spike_cycles", None), link,
                   top.link)
    plan = plan_memories(sized_inventory(top.link, frame), board,
                         lut_budget=lut_budget / board.packing - core)
    cycles = link.cycles(top.link.accelerator)
    return Fit(lanes, plan, math.ceil((core + plan.logic_luts) * board.packing),
               cycles["steady"], cycles["stages"], dsps=link.dsps(top.link.accelerator),
               use_dsp=link.use_dsp, firing=top.link.accelerator.firing,
               membranes=getattr(top.link.accelerator, "membranes", ()),
               encoder_banks=getattr(getattr(top.link.accelerator, "encoder", None), "banks", 2))


def _single_port_records(placed) -> list:
    """Per layer the name of its single-port membrane memory in ``placed`` (or None)."""
    names = {r.name: r for r in placed.plan.records if r.single_port}
    return [f"accelerator.layer{n}.membrane.ram"
            if f"accelerator.layer{n}.membrane.ram" in names else None
            for n in range(len(placed.lanes))]


@_memo
def _steady(net, lanes, link) -> int:
    """Cycles per sample back to back of the accelerator at ``lanes`` (cycle model; the
    accelerator is built for its sizes only, never elaborated)."""
    return link.cycles(link.sized(net, lanes))["steady"]


def _trim(net, lanes, link) -> tuple:
    """``lanes`` with every layer lowered to the fewest lanes that keep the cycles per
    sample: a layer that is not the bottleneck needs no more (it saves logic and memory).
    Only the fewest lanes of each group count are tried: more lanes for the same groups
    take the same cycles."""
    lanes, steady = list(lanes), _steady(net, lanes, link)
    for n, layer in enumerate(net.layers):
        if not hasattr(layer, "weight"):
            continue
        size = layer.weight.shape[0]       # the fewest lanes for each count of groups
        fewest = sorted({-(-size // groups) for groups in range(1, size + 1)})
        for q in (q for q in fewest if q < lanes[n]):
            trial = lanes[:n] + [q] + lanes[n + 1:]
            if _steady(net, trial, link) <= steady:
                lanes = trial
                break
    return tuple(lanes)


def _candidates(net, most=None):
    """Single lane counts worth trying, most first: powers of two, three times powers of
    two and the layer widths, each giving another per-layer configuration."""
    widest = max(layer.weight.shape[0] for layer in net.layers if hasattr(layer, "weight"))
    most = min(widest, most or widest)
    counts = {most} | {layer.weight.shape[0] for layer in net.layers
                       if hasattr(layer, "weight")}
    counts |= {k << s for k in (1, 3) for s in range(most.bit_length())}
    out, seen = [], set()
    for p in sorted((c for c in counts if 1 <= c <= most), reverse=True):
        config = tuple(layer_lanes(net, p))
        if config not in seen:
            seen.add(config)
            out.append(p)
    return out


def _uniform(net, board, link, lut_budget, most=None):
    """The largest single lane count (at most ``most``) whose plan fits, and its fit. A
    scan from the most lanes down: memory need is not monotonic in the lanes (the iCE40
    SPRAMs hold 16-bit words, so 2 to 8 lanes of MNIST weights fit where 1 does not)."""
    for p in _candidates(net, most):
        placed = _plan_or_trim(net, board, p, link, lut_budget)
        if placed is not None:
            return p, placed
    return 0, None


def _plan_or_trim(net, board, lanes, link, lut_budget):
    """The fit at ``lanes`` or, when that does not fit, with the layers that are not the
    bottleneck trimmed (:func:`_trim`); None when neither fits."""
    placed = _plan(net, board, lanes, link, lut_budget)
    if not placed.problems(board, lut_budget):
        return placed
    trimmed = _trim(net, placed.lanes, link)
    if trimmed != placed.lanes:
        placed = _plan(net, board, trimmed, link, lut_budget)
        if not placed.problems(board, lut_budget):
            return placed
    return None


def _bottleneck(net, placed):
    """The layer whose stage bounds the steady cycles, and its next lane count that cuts
    its word count (or None)."""
    stages = placed.stages
    slowest = max(stages, key=stages.get)
    n = stage_layer(slowest)
    if n is None and slowest.startswith("stream"):      # a chain: its consuming layer
        n = int(slowest[6:])
        n += n + 1 < len(net.layers) and not hasattr(net.layers[n], "weight")
    if n is None:
        return None
    layer = net.layers[n]
    if not hasattr(layer, "weight"):
        return None
    q = more_lanes(layer, placed.lanes[n])
    return None if q is None else (n, q)


def _refine(net, board, link, lut_budget, placed, tries=4):
    """Raise the lanes of the slowest layer while the plan still fits."""
    for _ in range(tries):
        step = _bottleneck(net, placed)
        if step is None:
            break
        lanes = list(placed.lanes)
        lanes[step[0]] = step[1]
        trial = _plan(net, board, lanes, link, lut_budget)
        if trial.problems(board, lut_budget) or trial.steady >= placed.steady:
            break
        placed = trial
    return placed


def _sorted_planned() -> bool:
    """Whether a plan of this :func:`fit` call sorted a layer (else planning again with
    every layer sweeping would try the same configurations)."""
    return any(key[0] == "_plan_at" and "sorted" in placed.firing
               for key, (_, placed) in _MEMO.items())


def _memory_luts(net, board, share):
    """LUT4 a board has for memories in logic once the 1-lane cores' logic is placed."""
    layers = len(net.layers)
    return board.luts * share / board.packing - _core_luts(net, [1] * layers, board.family)


def _refuse_from_bits(net, board, share):
    """Refuse ``net`` when its memory floor (:mod:`~onespike.boards.capacity`: every
    weight, one bank of every membrane) is over what ``board``'s memories of every kind
    hold, before any component is built; the refusal says what would fit."""
    luts = _memory_luts(net, board, share)
    floor = floor_of(net)
    short = shortfall(floor, board, luts)
    if not short:
        return
    raise OnespikeError(
        f"the network does not fit {board.name} ({board.device}) at any lane count: its "
        f"weights take at least {floor.weights // 1024} kbit and its membranes "
        f"{floor.membranes // 1024} kbit (one bank each), the board has {capacity_text(board)} "
        f"and ~{max(int(luts), 0)} LUT4 for memories in logic ({short} LUT4 short); "
        f"{_advice(net, board, share, weight_bits=True)}")


def _narrower(net, bits):
    """``net`` with every weight word cut to ``bits`` (shifted right): the memories a
    conversion at ``--weight-bits bits`` gives, for sizing only."""
    def cut(weight):
        shift = max(signed_bits(int(np.abs(weight).max(initial=0))) - bits, 0)
        top = 2 ** (bits - 1) - 1                  # symmetric, as the mapper quantizes
        return np.clip(np.asarray(weight) >> shift, -top, top)

    layers = tuple(replace(layer, weight=cut(layer.weight),
                           **({"recurrent": cut(layer.recurrent)}
                              if isinstance(layer, Recurrent) else {}))
                   if hasattr(layer, "weight") else layer for layer in net.layers)
    return replace(net, layers=layers)


def _planned_weight_bits(net, board, link, budget):
    """The most weight bits (below the network's) at which the planner fits ``net`` on
    ``board`` at one lane, or None: the block packing that the memory floor leaves out."""
    bits = max((signed_bits(int(np.abs(layer.weight).max(initial=0)))
                for layer in net.layers if hasattr(layer, "weight")), default=0)
    for b in range(bits - 1, 1, -1):
        try:
            if not _plan(_narrower(net, b), board, 1, link, budget).problems(board, budget):
                return b
        except OnespikeError:
            continue
    return None


def _advice(net, board, share, weight_bits=False) -> str:
    """What may fit where ``net`` does not: with ``weight_bits`` (the refusal came from
    the memory floor) the most weight bits at which its floor fits ``board`` (a floor: the
    plan at those bits says the lanes), and the boards whose memory holds its floor."""
    advice = []
    bits = fewer_weight_bits(net, board, _memory_luts(net, board, share)) \
        if weight_bits else None
    if bits is not None:
        advice.append(f"at most {bits}-bit weights (convert again with --weight-bits "
                      f"{bits} or fewer; the weights then take "
                      f"{floor_of(net, bits).weights // 1024} kbit, within the board's "
                      f"memory bits; the planner then says whether its blocks pack them)")
    boards = larger_boards(net, board, lambda b: _memory_luts(net, b, share))
    advice.append(f"a board with more memory (the floor fits {', '.join(boards)})"
                  if boards else "no supported board holds it")
    return "what may fit: " + " or ".join(advice)


def fit(net, board: Board, lanes=None, link=LinkOptions(), lut_share=LUT_SHARE) -> Fit:
    """:func:`_fit`; with ``firing="auto"``, when the sorted layers' lists and logic do
    not fit, every layer sweeps instead (and the reason says so). A TTFS network whose
    memory floor is over the board's memory is refused first, from its bits alone."""
    _MEMO.clear()
    if link.coding == "ttfs":
        _refuse_from_bits(net, board, 1.0 if lanes is not None else lut_share)
    try:
        return _fit(net, board, lanes, link, lut_share)
    except OnespikeError as e:
        if link.coding != "ttfs" or link.firing != "auto" or not _sorted_planned():
            raise
        try:
            placed = _fit(net, board, lanes, replace(link, firing="sweep"), lut_share)
        except OnespikeError:
            raise e from None
        return replace(placed, reason=f"{placed.reason}; every layer sweeps (the sorted "
                                      f"firing auto chose does not fit: {e})")


def _fit(net, board: Board, lanes=None, link=LinkOptions(), lut_share=LUT_SHARE) -> Fit:
    """The lane configuration and memory plan for ``net`` on ``board``. With ``lanes``
    (one count or one per layer) that configuration, refused with the numbers when it
    cannot fit; without, the fastest that fits (a single lane count first, then more lanes
    for the slowest layer), keeping the estimated LUTs under ``lut_share`` of the device.
    ``link``: the baud rate and the accelerator (:class:`LinkOptions`). The TTFS cores are
    planned with shifted-add multiplies; with ``use_dsp`` they then take DSP blocks when
    the board has enough for the lanes chosen (fewer LUTs than planned), else stay so."""
    if link.coding == "ttfs" and link.use_dsp:
        placed = _fit(net, board, lanes, replace(link, use_dsp=False), lut_share)
        need = link.dsps(link.sized(net, placed.lanes))
        if need <= board.dsps:
            return replace(placed, dsps=need, use_dsp=True,
                           reason=f"{placed.reason}; the lane multiplies in {need} DSP blocks")
        return replace(placed, reason=f"{placed.reason}; the lane multiplies from LUTs "
                                      f"({need} DSP blocks needed, {board.dsps} available)")
    if lanes is not None:
        placed = _plan_or_trim(net, board, lanes, link, board.luts)
        if placed is not None:
            asked = tuple(layer_lanes(net, lanes))
            return replace(placed, reason="lanes as asked (--lanes)" if placed.lanes == asked
                           else f"--lanes {lanes} does not fit; the layers that do not "
                                f"bound the cycles per sample trimmed to {list(placed.lanes)}")
        problems = _plan(net, board, lanes, link, board.luts).problems(board, board.luts)
        most = max(lanes) if isinstance(lanes, (list, tuple)) else lanes
        fits, _ = _uniform(net, board, link, board.luts, most=most - 1) if most > 1 \
            else (0, None)
        advice = f"--lanes {fits} fits" if fits else \
            f"no lane count fits; {_advice(net, board, 1.0)}"
        raise OnespikeError(f"the network at {lanes} lane(s) does not fit {board.name} "
                            f"({board.device}): {'; '.join(problems)}; {advice}")
    budget = int(board.luts * lut_share)
    p, placed = _uniform(net, board, link, budget)
    if placed is None and lut_share >= LUT_SHARE:   # more of the device, at one lane only
        tight = _plan_or_trim(net, board, 1, link, int(board.luts * TIGHT_SHARE))
        if tight is not None:
            return replace(tight, reason=(
                f"{_lanes_text(tight.lanes)} fit only above the planner's share of the "
                f"LUTs ({lut_share:.0%}): ~{tight.luts} of {board.luts} estimated; place and "
                f"route has little room and may take longer (memories: "
                f"{_kinds(tight.plan)})"))
    if placed is None:
        problems = _plan(net, board, 1, link, budget).problems(board, budget)
        bits = _planned_weight_bits(net, board, link, budget)
        planned = f"{bits}-bit weights (convert again with --weight-bits {bits}: the " \
                  f"planner fits that at 1 lane) or " if bits else ""
        raise OnespikeError(f"the network does not fit {board.name} ({board.device}) even "
                            f"at 1 lane: {'; '.join(problems)} (the board has "
                            f"{capacity_text(board)}); {_advice(net, board, lut_share)}"
                            .replace("what may fit: ", "what may fit: " + planned, 1))
    refined = _refine(net, board, link, budget, placed)
    reason = (f"{_lanes_text(placed.lanes)} fit: {p} lane(s) a layer at most"
              + (", fewer where a layer does not bound the cycles per sample"
                 if max(placed.lanes) < p or placed.lanes != tuple(layer_lanes(net, p))
                 else "")
              + f" (memories: {_kinds(refined.plan)}; ~{refined.luts} of {board.luts} LUTs "
                f"estimated)")
    if refined.lanes != placed.lanes:
        reason += (f"; then more lanes for the slowest layers: {_lanes_text(refined.lanes)}, "
                   f"{placed.steady} -> {refined.steady} cycles per sample")
    return replace(refined, reason=reason)


def _lanes_text(lanes) -> str:
    """Lanes per layer and their total, as the messages state them."""
    return f"lanes {list(lanes)} ({sum(lanes)} in all)"


def _kinds(plan: MemoryPlan) -> str:
    counts = plan.summary()["memories"]
    text = ", ".join(f"{n} in {kind}" for kind, n in counts.items() if n)
    return f"{text}; {plan.blocks} blocks" + (f", {plan.sprams} SPRAM"
                                             if plan.sprams else "")
def _clock(board, clock_mhz):
    """``(clock_hz, pll)``: the oscillator, or a PLL when ``clock_mhz`` differs."""
    if clock_mhz is not None and abs(clock_mhz * 1e6 - board.clock_hz) > 1:
        pll = pll_for(board.family, board.clock_hz, clock_mhz * 1e6)
        return round(pll.f_out), pll
    return board.clock_hz, None


def _prepare(net, board, out_dir, lanes, link, clock_mhz, log, lut_share=LUT_SHARE):
    """Plan, elaborate and write the tool scripts into ``out_dir/build`` (nothing
    elsewhere); returns ``(fit, top, root, clock_hz, pll)``."""
    clock_hz, pll = _clock(board, clock_mhz)
    planning = time.monotonic()
    placed = fit(net, board, lanes, link, lut_share)
    log(f"{_lanes_text(placed.lanes)}, planned in {time.monotonic() - planning:.1f} s: "
        f"{placed.reason}")
    ttfs = link.coding == "ttfs"
    firing = list(placed.firing) if ttfs else "auto"   # as planned
    membranes = list(placed.membranes) if ttfs else "dual"
    top = BoardTop(net, lanes=list(placed.lanes), clock_hz=clock_hz,
                   **{**link.options, "use_dsp": placed.use_dsp, "firing": firing,
                      "membranes": membranes, "encoder_banks": placed.encoder_banks},
                   memory_plan=placed.plan, pll=pll)
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


def _ending(build_log):
    """``", the log ends: <its last line>"``, or nothing for an empty log."""
    lines = [line.strip() for line in build_log.splitlines() if line.strip()]
    return f", the log ends: {lines[-1]}" if lines else ""


def _run_tools(board, root, log, crash_retries=1):
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
            return (*prepared, _run_tools(board, prepared[2], log))
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
        "coding": coding, "use_dsp": placed.use_dsp, "dsp_planned": placed.dsps,
        "firing": list(top.link.accelerator.firing),
        "membranes": list(getattr(top.link.accelerator, "membranes", ())),
        "encoder_banks": getattr(getattr(top.link.accelerator, "encoder", None), "banks", 2),
        "lanes": list(top.link.accelerator.lanes), "lanes_reason": placed.reason,
        "clock_mhz": clock_hz / 1e6, "pll": pll is not None, "fmax_mhz": round(fmax, 2),
        "timing_met": fmax >= clock_hz / 1e6,
        "baud": baud, "checksum": f"{top.link.identity.checksum:08x}",
        **_utilisation(board, report, (root / f"{NAME}.rpt").read_text(errors="replace")),
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
