"""The board planner: a lane configuration, membrane forms and memory plan for a network on
a board (:func:`fit`, :class:`Fit`), from the cores' sizes, the memory plan
(:mod:`~onespike.boards.memories`), the memory floor (:mod:`~onespike.boards.capacity`)
and a LUT model fitted to yosys (:data:`LOGIC_FIT`); no tool runs here."""

import math
from dataclasses import dataclass, replace

import numpy as np

from onespike.boards.capacity import (capacity_text, fewer_weight_bits, floor_of,
                                      larger_boards, shortfall)
from onespike.boards.memories import MemoryPlan, plan_memories, sized_inventory, skeleton
from onespike.boards.platforms import Board
from onespike.boards.top import DEFAULT_BAUD, BoardTop
from onespike.errors import OnespikeError
from onespike.hdl.cycles import cycle_estimate, stage_layer
from onespike.hdl.dense_cycles import dense_cycle_estimate
from onespike.hdl.generate import accelerator, check_firing, check_membranes
from onespike.hdl.streams import discard
from onespike.hdl.plan import layer_lanes, more_lanes
from onespike.ir import Recurrent, signed_bits

__all__ = ["fit", "Fit", "LinkOptions", "LUT_SHARE", "TIGHT_SHARE", "BLOCK_SHARE",
           "QUICK_BUILD_LUTS", "LOGIC_FIT"]

# the most lanes the planner gives a layer on its own: the yowasp tools (WebAssembly) ran
# out of call stack on the 784-512-256-10 MLP at 171 lanes in its first layer, twice, and
# yosys synthesized it at 128 in 253 s (bench/lut_estimate.py --net mlp-512 --weight-bits 6)
MOST_LANES = 128
LUT_SHARE = 0.85        # the planner keeps estimated LUTs under this share of the device
TIGHT_SHARE = 0.92      # ... or, when nothing fits so, at one lane under this one (an
                        # iCE40 CNN estimated at 96 % did not place; at 81 % it did)
# per family: a default plan keeps its block RAMs within this share of the device where it
# can. On the ULX3S-85F the 784-512-256-10 MLP (6-bit weights) did not route with 97 % and
# 100 % of the DP16KD planned (nextpnr's router1 and router2 stopped after 15-30 minutes
# with thousands of overused wires), and routed at 86 % ([16, 6, 1]); the iCEBreaker's
# CNNs route with all 30 EBR.
BLOCK_SHARE = {"ecp5": 0.85}
# a default keeps its estimated LUT sites under this where a plan does, for a build of about
# ten minutes: the ULX3S-85F defaults took 178-220 s at 7-8k placed LUT sites, 562 s at 19k
# and 941 s at 33k (bench/lut_estimate.py on a 2-core machine); --lanes builds more
QUICK_BUILD_LUTS = 20_000


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
    use_dsp: object = False   # the lane multiplies in DSP blocks (else shifted adds), or
                              # per layer
    firing: tuple = ()        # per layer: "sorted", "sweep" or None (no firing phase)
    membranes: tuple = ()     # per layer: hdl.plan.FORMS or None (no membranes to choose)
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
    ``membranes``: ``dual``, ``single`` (:data:`~onespike.hdl.plan.MEMBRANES`), one per
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
        if not isinstance(self.use_dsp, bool):           # one flag per layer: hashable
            object.__setattr__(self, "use_dsp", tuple(self.use_dsp))
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
        """The accelerator's plan at ``lanes`` (its sizes; no component)."""
        resolved = self.resolved
        return accelerator(net, lanes=lanes, coding=self.coding, use_dsp=self.use_dsp,
                           firing=self.firing, membranes=resolved.membranes,
                           encoder_banks=resolved.encoder_banks, sizes=True)

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
        return accelerator.dsp_multipliers


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


def _frame(net, board, link, planned):
    """The design's memories but those of the parts sized from their plan (the cores and
    the encoder, :func:`~.memories.skeleton`), once per network, coding and UART rate: the
    rest depends neither on the lanes nor on the options of those parts. The one design a
    planner builds: the design of ``planned``'s options, made only when its frame is not
    known yet, and never elaborated whole."""
    key = ("_frame", id(net), link.coding, link.baud)
    if key not in _MEMO or _MEMO[key][0] is not net:
        top = discard(BoardTop(net, lanes=list(planned.lanes), clock_hz=board.clock_hz,
                               **link.options))
        _MEMO[key] = (net, skeleton(top.link))
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
    top = link.accelerator(net, list(lanes))
    return [core.state_memory_bits if m is not None else 0
            for core, m in zip(top.cores, top.membranes)]


@_memo
def _plan_at(net, board, lanes, link, lut_budget) -> Fit:
    planned = link.accelerator(net, lanes)
    lanes = tuple(planned.lanes)
    core = link.logic_luts(net, lanes, board.family, planned.firing)
    frame = _frame(net, board, link, planned)
    plan = plan_memories(sized_inventory(planned, frame), board,
                         lut_budget=lut_budget / board.packing - core)
    cycles = link.cycles(planned)
    return Fit(lanes, plan, math.ceil((core + plan.logic_luts) * board.packing),
               cycles["steady"], cycles["stages"], dsps=link.dsps(planned),
               use_dsp=link.use_dsp, firing=planned.firing, membranes=planned.membranes,
               encoder_banks=getattr(planned.encoder, "banks", 2))


def _single_port_records(placed) -> list:
    """Per layer the name of its single-port membrane memory in ``placed`` (or None)."""
    names = {r.name: r for r in placed.plan.records if r.single_port}
    return [f"accelerator.layer{n}.membrane.ram"
            if f"accelerator.layer{n}.membrane.ram" in names else None
            for n in range(len(placed.lanes))]


@_memo
def _steady(net, lanes, link) -> int:
    """Cycles per sample back to back of the accelerator at ``lanes`` (the cycle model on
    its plan)."""
    return link.cycles(link.accelerator(net, lanes))["steady"]


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
    most = min(widest, most or widest, MOST_LANES)
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
        placed = _plan_or_trim(net, board, p, link, lut_budget, trim_fitting=most is None)
        if placed is not None:
            return p, placed
    return 0, None


def _plan_or_trim(net, board, lanes, link, lut_budget, trim_fitting=False):
    """The fit at ``lanes`` or, when that does not fit (or always, with
    ``trim_fitting``), with the layers that are not the bottleneck trimmed (:func:`_trim`:
    the same cycles in less logic); None when neither fits."""
    placed = _plan(net, board, lanes, link, lut_budget)
    fits = not placed.problems(board, lut_budget)
    if fits and not trim_fitting:
        return placed
    trimmed = _trim(net, placed.lanes, link)
    if fits:
        if trimmed != placed.lanes:       # the same cycles in less logic (a quicker build)
            fewer = _plan(net, board, trimmed, link, lut_budget)
            if not fewer.problems(board, lut_budget):
                return fewer
        return placed
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
    return None if q is None or q > MOST_LANES else (n, q)


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
    """The plan for ``net`` on ``board`` (:func:`_fit_firing`). A TTFS network whose memory
    floor is over the board's memory is refused first, from its bits alone. A default (no
    ``lanes``) that takes more than :data:`BLOCK_SHARE` of the block RAMs is planned again
    within that share where it can be (its firing as ``link`` asks), else says so."""
    _MEMO.clear()
    if link.coding == "ttfs":
        _refuse_from_bits(net, board, 1.0 if lanes is not None else lut_share)
    placed = _fit_firing(net, board, lanes, link, lut_share)
    share = BLOCK_SHARE.get(board.family, 1.0) if lanes is None else 1.0
    if placed.plan.blocks <= board.blocks * share:
        return placed
    try:                              # a default: within the share of block RAM that routes
        return _fit(net, replace(board, blocks=int(board.blocks * share)), lanes, link,
                    lut_share)
    except OnespikeError:
        return replace(placed, reason=(
            f"{placed.reason}; it fits only above the planner's share of the block RAM "
            f"({share:.0%}): {placed.plan.blocks} of {board.blocks} {board.block_ram.name} "
            f"blocks, which place and route may not route"))


def _fit_firing(net, board: Board, lanes, link, lut_share) -> Fit:
    """:func:`_fit`, and with ``firing="auto"`` when the sorted layers' lists and logic do
    not fit, every layer sweeping instead (the reason says so)."""
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


def _with_dsps(net, board: Board, lanes, link, lut_share) -> Fit:
    """The TTFS fit planned with shifted-add multiplies, then its lane multiplies in DSP
    blocks: all when the board has enough, else (not on Gowin) the layers with the most
    multiplies while blocks remain; a per-layer ``use_dsp`` as it is given."""
    placed = _fit(net, board, lanes, replace(link, use_dsp=False), lut_share)
    sized = replace(link, firing=tuple(placed.firing), membranes=tuple(placed.membranes),
                    encoder_banks=placed.encoder_banks).accelerator(net, placed.lanes)
    need = link.dsps(sized)
    if not isinstance(link.use_dsp, bool):            # per layer, as asked (a plan)
        if need > board.dsps:
            raise OnespikeError(f"the layers given DSP multiplies take {need} DSP blocks, "
                                f"{board.name} has {board.dsps}")
        return replace(placed, dsps=need, use_dsp=link.use_dsp,
                       reason=f"{placed.reason}; the lane multiplies of the layers asked "
                              f"for in {need} DSP blocks")
    if need <= board.dsps:
        return replace(placed, dsps=need, use_dsp=True,
                       reason=f"{placed.reason}; the lane multiplies in {need} DSP blocks")
    per = [getattr(core, "multipliers", 0) for core in sized.cores]
    # not on Gowin: its synthesis took 24 MULT cells for 20 planned products
    splits = board.family != "gowin"
    chosen, total = set(), 0                 # the layers with the most multiplies first
    for n in sorted(range(len(per)), key=lambda n: -per[n]) if splits else ():
        if per[n] and total + per[n] <= board.dsps:
            chosen.add(n)
            total += per[n]
    if chosen:
        return replace(placed, dsps=total,
                       use_dsp=tuple(n in chosen for n in range(len(per))),
                       reason=f"{placed.reason}; the lane multiplies of layer(s) "
                              f"{', '.join(map(str, sorted(chosen)))} in {total} DSP blocks, "
                              f"the others from LUTs ({need} needed for all, "
                              f"{board.dsps} available)")
    return replace(placed, reason=f"{placed.reason}; the lane multiplies from LUTs "
                                  f"({need} DSP blocks needed, {board.dsps} available)")


def _fit(net, board: Board, lanes=None, link=LinkOptions(), lut_share=LUT_SHARE) -> Fit:
    """The lane configuration and memory plan for ``net`` on ``board``. With ``lanes``
    (one count or one per layer) that configuration, refused with the numbers when it
    cannot fit; without, the fastest that fits (a single lane count first, then more lanes
    for the slowest layer), keeping the estimated LUTs under ``lut_share`` of the device
    and, where a plan can, under :data:`QUICK_BUILD_LUTS` (a quick build).
    ``link``: the baud rate and the accelerator (:class:`LinkOptions`). The TTFS cores are
    planned with shifted-add multiplies; with ``use_dsp`` they then take the DSP blocks
    the board has (:func:`_with_dsps`: fewer LUTs than planned)."""
    if link.coding == "ttfs" and link.use_dsp is not False:
        return _with_dsps(net, board, lanes, link, lut_share)
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
    quick = min(budget, QUICK_BUILD_LUTS)
    p, placed = _uniform(net, board, link, quick)
    if placed is not None and quick < budget:
        budget = quick                               # a quick build: refine within it too
    elif quick < budget:                             # not even one lane: the whole share
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
                f"estimated" + (f", kept under ~{QUICK_BUILD_LUTS:,} for a build of about ten "
                                f"minutes; --lanes builds more" if budget == QUICK_BUILD_LUTS
                                else "") + ")")
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
