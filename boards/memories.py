"""How a board maps the accelerator's memories, by name: block RAM, distributed (LUT) RAM,
logic, or (iCE40 UltraPlus) the single-port SPRAMs, which a bitstream cannot initialise,
so weights placed there are loaded at run time over the host link (LOAD frames, in the byte
order of :func:`load_image`).

Every memory is named by its path in the design (``accelerator.layer0.weights``: the
submodule names from the linked accelerator down), which the hdl gives it by the names of
its submodules; nothing else about boards reaches ``hdl/``, except that weight memories
carry the attribute ``onespike_role = "weights"``. :func:`inventory` lists the memories an
elaborated design holds; :func:`plan_memories` decides where each goes on a board
(:class:`MemoryPlan`); :class:`MemoryMapper` builds each memory the way the plan says,
looked up by name, after elaboration (no reliance on elaboration order).
"""

import math
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
from amaranth.hdl import (Cat, ClockSignal, Const, DomainRenamer, Elaboratable, Fragment,
                          Instance, Value,
                          MemoryData, MemoryInstance, Module, Mux, Shape, Signal)
from amaranth.lib import data, memory, wiring

from onespike.errors import OnespikeError
from onespike.hdl.core import NeuronSizes
from onespike.hdl.encoder import EncoderSizes
from onespike.hdl.mac import MacSizes
from onespike.hdl.recurrent import RecurrentSizes
from onespike.hdl.single_port import SINGLE_PORT_ROLE
from onespike.hdl.streams import discard, neuron_layout

__all__ = ["MemoryRecord", "inventory", "SpramPlan", "load_image", "MemoryPlan",
           "plan_memories", "MemoryMapper", "SpramWeights", "SpramMembranes",
           "SlicedWeights", "OnPlatform", "init_rows", "all_weights_in_spram",
           "sized_inventory", "core_records", "encoder_records", "mac_records", "skeleton",
           "KINDS", "SPRAM_WIDTH", "SPRAM_DEPTH"]

SPRAM_WIDTH, SPRAM_DEPTH = 16, 16384    # SB_SPRAM256KA
SPRAM_TAIL = 4      # the most bits past a single-port RAM's last full SPRAM word kept in
                    # block RAM instead of another SPRAM
KINDS = ("block", "distributed", "logic", "spram", "sliced")   # where a memory can go


@dataclass(frozen=True)
class MemoryRecord:
    name: str            # path in the design, e.g. "accelerator.layer0.weights"
    width: int
    depth: int
    read_ports: int
    write_ports: int
    weights: bool
    source: object = field(default=None, repr=False, compare=False)   # the Memory
    varying: int = None      # a ROM's data bits that are not the same in every row
    single_port: bool = False   # a RAM read or written once a cycle (SPRAM may hold it)

    @property
    def used_width(self):
        """The width yosys keeps: a ROM loses the bits that are constant (``opt_mem``)."""
        return self.width if self.varying is None else self.varying

    @cached_property
    def init(self) -> tuple:
        """The initial rows as unsigned ints (for the SPRAM load image); ``source`` is the
        Memory or, for a record from sizes (:func:`sized_inventory`), a function giving
        them."""
        if callable(self.source):
            return tuple(self.source())
        return init_rows(self.source) if self.source is not None else ()

    @property
    def bits(self):
        return self.width * self.depth

    @property
    def rom(self):
        return self.write_ports == 0

    @property
    def spram_tail(self):
        """Bits of a single-port RAM's word that go to block RAM beside its SPRAMs: the
        few bits past its last full 16 (a 17- or 18-bit membrane takes one SPRAM and a
        narrow block memory, not two SPRAMs)."""
        rest = self.width % SPRAM_WIDTH
        return rest if self.single_port and self.width > SPRAM_WIDTH and \
            rest <= SPRAM_TAIL else 0

    @property
    def spram_count(self):
        return math.ceil((self.width - self.spram_tail) / SPRAM_WIDTH) * \
            math.ceil(self.depth / SPRAM_DEPTH)

    @property
    def row_bytes(self):
        return (self.width + 7) // 8

    @property
    def row_stride(self):
        """Bytes per row in the load image: a power of two, so the hardware finds a byte's
        row and position by slicing its address."""
        return 1 << (self.row_bytes - 1).bit_length()


def init_rows(mem) -> tuple:
    """A memory's initial rows as unsigned ints."""
    width = Shape.cast(mem.shape).width
    layout = mem.shape if isinstance(mem.shape, data.Layout) else None
    return tuple((layout.const(row).as_value().value if layout else int(row))
                 & ((1 << width) - 1) for row in mem.init)


SLOT = "onespike_memory_slot"


class _Slots:
    """``get_memory`` while the design elaborates: each memory becomes an empty
    ``Instance`` that numbers it (an Instance, so it survives the transforms that rebuild
    fragments, such as ``ResetInserter``), replaced once its name (its path) is known."""

    def get_memory(self, mem):
        memories = self.__dict__.setdefault("_slot_memories", [])
        memories.append(mem)
        return Instance(SLOT, p_number=len(memories) - 1)

    def slot_memory(self, instance):
        return self._slot_memories[instance.parameters["number"]]


def _slots(fragment, path=()):
    """``(path, parent fragment, index, slot)`` for every memory slot under ``fragment``."""
    for index, (sub, name, _) in enumerate(fragment.subfragments):
        here = path + (str(name),)
        if isinstance(sub, Instance) and sub.type == SLOT:
            yield ".".join(here), fragment, index, sub
        else:
            yield from _slots(sub, here)


def _raw_rows(mem):
    """A memory's rows as ints, fast: Amaranth's private ``MemoryData.Init._raw`` (pinned
    amaranth 0.5.10), else the public (slow) conversion."""
    raw = getattr(mem.init, "_raw", None)
    return raw if raw is not None else init_rows(mem)


def _varying_bits(mem) -> int:
    """How many data bits of a ROM differ between rows: yosys (``opt_mem``) drops a bit
    that is the same in every row."""
    width = Shape.cast(mem.shape).width
    mask = (1 << width) - 1
    any_one, all_one = 0, mask
    for row in _raw_rows(mem):
        any_one |= row & mask
        all_one &= row & mask
    if len(mem.init) < mem.depth:        # rows past the init list read as zero
        all_one = 0
    return bin(any_one & ~all_one & mask).count("1")


def _record(name, mem) -> MemoryRecord:
    role = mem.attrs.get("onespike_role")
    varying = None if mem.write_ports else _varying_bits(mem)
    return MemoryRecord(name, Shape.cast(mem.shape).width, mem.depth, len(mem.read_ports),
                        len(mem.write_ports), role == "weights", mem, varying,
                        role == SINGLE_PORT_ROLE)


def inventory(top) -> list:
    """Every memory ``top`` (a component, elaborated here and thrown away) holds, as
    :class:`MemoryRecord` named by path below ``top``."""
    collector = _Slots()
    fragment = Fragment.get(top, collector)
    records = [_record(name, collector.slot_memory(slot))
               for name, _, _, slot in _slots(fragment)]
    names = [r.name for r in records]
    if len(set(names)) != len(names):
        raise OnespikeError(f"two memories share a name in the design: {sorted(names)}")
    return records


def _varying_columns(columns) -> int:
    """:func:`_varying_bits` of a ROM given as ``(values, bits)`` columns (one per field of
    a row, numpy arrays over the rows, two's complement in ``bits``)."""
    count = 0
    for values, bits in columns:
        masked = np.asarray(values, dtype=np.int64) & ((1 << bits) - 1)
        if len(masked):
            count += bin(int(np.bitwise_or.reduce(masked)) &
                         ~int(np.bitwise_and.reduce(masked))).count("1")
    return count


def _packed(columns, bits):
    """Rows of equal-width fields as unsigned ints, field 0 in the low bits."""
    mask = (1 << bits) - 1
    rows = [0] * len(columns[0])
    for k, column in enumerate(columns):
        for i, v in enumerate(column.tolist()):
            rows[i] |= (v & mask) << (k * bits)
    return rows


def core_records(core, path) -> list:
    """The memories of neuron core ``core`` (its :class:`~onespike.hdl.core.NeuronSizes`)
    named below ``path``, from its sizes alone: what :func:`inventory` finds when it
    elaborates the core (``tests/test_boards_memories.py`` holds the two equal), without
    building its memories' contents."""
    lanes, membrane = core.lanes, core._widths.membrane_bits
    contents, bits = core.weight_contents, core.weight_bits
    records = [MemoryRecord(
        f"{path}.weights", lanes * bits, len(contents), 1, 0, True,
        lambda: _packed(contents.T, bits), _varying_columns((c, bits) for c in contents.T))]
    u0, ramp = core._constant_words()
    if core.sorted_firing:
        ramp = core.reciprocals.of(ramp)
    slope = max(int(ramp.max(initial=0)), 1).bit_length()
    columns = [(c, b) for l in range(lanes) for c, b in ((u0[:, l], membrane),
                                                        (ramp[:, l], slope))]
    records.append(MemoryRecord(f"{path}.constants", lanes * (membrane + slope),
                                core.constant_rows, 1, 0, False,
                                varying=_varying_columns(columns)))
    records.append(MemoryRecord(f"{path}.membrane.ram", lanes * membrane, core.state_depth,
                                1, 1, False, single_port=True) if core.single_port else
                   MemoryRecord(f"{path}.membrane", lanes * membrane, core.state_depth, 2, 1,
                                False))
    if core.sorted_firing:
        counters = [max(n, 1) for n in [core.groups] + core.position_sizes()]
        ptr = sum((n - 1).bit_length() for n in counters)
        for name, depth in (("links", 1 << ptr), ("heads", core.reciprocals.levels)):
            records += [MemoryRecord(f"{path}.{name}{l}", ptr + 1, depth, 1, 1, False)
                        for l in range(lanes)]
    return records


def encoder_records(encoder, path) -> list:
    """The memories of the TTFS input encoder ``encoder`` (its
    :class:`~onespike.hdl.encoder.EncoderSizes`) named below ``path``: per bank a head per
    level and a link per neuron, and for an image each neuron's coordinates (what
    :func:`inventory` finds when it elaborates the encoder)."""
    entry = encoder._entry_layout().size
    records = []
    for b in range(encoder.banks):
        records += [MemoryRecord(f"{path}.heads{b}", entry, encoder.levels + 1, 1, 1, False),
                    MemoryRecord(f"{path}.links{b}", entry, encoder.neurons, 1, 1, False)]
        if len(encoder.shape) == 3:
            records.append(MemoryRecord(f"{path}.coords{b}", neuron_layout(encoder.shape).size,
                                        encoder.neurons, 1, 1, False))
    return records


class _Sized:
    """Stands in for a part in :func:`sized_inventory`: one marker memory."""

    def __init__(self):
        self.marker = memory.Memory(shape=1, depth=1, init=[])

    def elaborate(self, platform):
        m = Module()
        m.submodules.marker = self.marker
        return m


def mac_records(core, path) -> list:
    """The memories of the dense coding's :class:`~onespike.hdl.mac.MacCore` ``core`` (its
    :class:`~onespike.hdl.mac.MacSizes`) named below ``path``: the weights, the constants
    (bias, ramp and a live bit per lane) and the two accumulator banks (what
    :func:`inventory` finds when it elaborates the core)."""
    lanes, acc = core.lanes, core.accumulator_bits
    contents, bits = core.weight_contents, core.weight_bits
    bias, ramp, alive = core.neuron_constants()
    columns = [(c, b) for l in range(lanes) for c, b in ((bias[:, l], acc),
                                                        (ramp[:, l], core.ramp_bits),
                                                        (alive[:, l], 1))]
    return [MemoryRecord(f"{path}.weights", lanes * bits, len(contents), 1, 0, True,
                         lambda: _packed(contents.T, bits),
                         _varying_columns((c, bits) for c in contents.T)),
            MemoryRecord(f"{path}.constants", lanes * (acc + core.ramp_bits + 1), core.words,
                         2, 0, False, varying=_varying_columns(columns)),
            *(MemoryRecord(f"{path}.acc{b}", lanes * acc, core.words, 1, 1, False)
              for b in range(2))]


#: the parts whose memories come from their sizes, and the function that lists them
SIZED_RECORDS = ((NeuronSizes, core_records), (EncoderSizes, encoder_records),
                 (MacSizes, mac_records))


def _sized_parts(accelerator) -> dict:
    """The parts whose memories :func:`sized_inventory` takes from their sizes
    (:data:`SIZED_RECORDS`), by where they are: a core index or ``"encoder"``."""
    parts = {n: core.core if isinstance(core, RecurrentSizes) else core
             for n, core in enumerate(getattr(accelerator, "cores", ()))}
    parts["encoder"] = getattr(accelerator, "encoder", None)
    return {at: part for at, part in parts.items()
            if isinstance(part, tuple(kind for kind, _ in SIZED_RECORDS))}


def _records(part, path) -> list:
    return next(records for kind, records in SIZED_RECORDS if isinstance(part, kind))(
        part, path)


def skeleton(top) -> list:
    """:func:`inventory` of ``top`` (a design whose ``accelerator`` holds ``cores``, or an
    accelerator) with the parts :data:`SIZED_RECORDS` names left unelaborated: its records,
    in order, with the ``(core index or "encoder", path)`` of such a part where its
    memories go (:func:`sized_inventory`)."""
    sized = {}
    for at, part in _sized_parts(getattr(top, "accelerator", top)).items():
        stand_in = _Sized()
        part.elaborate = stand_in.elaborate            # on this instance only
        sized[id(stand_in.marker)] = (at, discard(part))
    try:
        records = inventory(top)
    finally:
        for _, part in sized.values():
            del part.elaborate
    return [(sized[id(r.source)][0], r.name.rsplit(".", 1)[0]) if id(r.source) in sized
            else r for r in records]


def sized_inventory(top, frame=None) -> list:
    """:func:`inventory` of ``top`` (a design, an accelerator or its plan) with the memories
    of the parts :data:`SIZED_RECORDS` names (each neuron core, the TTFS encoder, the dense
    coding's cores) from their sizes instead of elaborating them: the same
    records, in the same order, in a fraction of the time. ``frame``: a :func:`skeleton` of
    a design that differs from ``top`` in those parts only (else it is made here)."""
    frame = skeleton(top) if frame is None else frame
    parts = _sized_parts(getattr(top, "accelerator", top))
    out = []
    for entry in frame:
        out += [entry] if isinstance(entry, MemoryRecord) else _records(parts[entry[0]],
                                                                         entry[1])
    return out


@dataclass(frozen=True)
class SpramPlan:
    """Which weight memories (by name) live in SPRAM, and where each starts in the load
    image."""
    entries: tuple = ()      # (name, MemoryRecord, byte offset)

    @classmethod
    def of(cls, records):
        entries, offset = [], 0
        for record in records:
            entries.append((record.name, record, offset))
            offset += record.depth * record.row_stride
        return cls(tuple(entries))

    @property
    def load_bytes(self):
        return sum(r.depth * r.row_stride for _, r, _ in self.entries)

    @property
    def sprams(self):
        return sum(r.spram_count for _, r, _ in self.entries)

    def entry(self, name):
        return next(((r, base) for n, r, base in self.entries if n == name), None)


def load_image(plan: SpramPlan) -> bytes:
    """The run-time weights: each SPRAM memory's rows, little-endian, ``row_stride`` bytes
    each (zero-padded)."""
    out = bytearray()
    for _, record, _ in plan.entries:
        out += b"".join(row.to_bytes(record.row_stride, "little") for row in record.init)
    return bytes(out)


@dataclass(frozen=True)
class MemoryPlan:
    """Where each memory goes (``kinds``: name → one of :data:`KINDS`) and what that uses:
    block RAMs, distributed-RAM units, SPRAMs, and an estimate of the LUTs the memories in
    logic or distributed RAM take."""
    records: tuple
    kinds: dict
    blocks: int
    lutram: int
    logic_luts: int
    spram_plan: SpramPlan = SpramPlan()

    @property
    def bits(self):
        return sum(r.bits for r in self.records)

    def names(self, kind):
        return [r.name for r in self.records if self.kinds[r.name] == kind]

    @property
    def sprams(self):
        """SPRAMs of every memory in SPRAM: the weights' (loaded at run time) and the
        single-port membranes'."""
        return sum(r.spram_count for r in self.records if self.kinds[r.name] == "spram")

    def summary(self) -> dict:
        """Counts by kind, for reports: ``{"block": [memories, blocks], ...}``."""
        out = {kind: len(self.names(kind)) for kind in KINDS}
        return {"memories": out, "blocks": self.blocks, "lutram_units": self.lutram,
                "sprams": self.sprams, "logic_luts": self.logic_luts}


def _usage(record, kind, board):
    """``(blocks, distributed units, LUTs)`` that ``record`` takes as ``kind``."""
    ram, lutram = board.block_ram, board.distributed
    if kind == "block":
        return ram.blocks(record), 0, 0
    if kind == "sliced":
        return ram.sliced_blocks(record), 0, 0
    if kind == "spram" and record.spram_tail:
        return ram.blocks(replace(record, width=record.spram_tail, read_ports=1)), 0, 0
    if kind == "distributed":
        units = lutram.units(record)
        return 0, units, units * lutram.luts_per_unit
    if kind == "logic":
        return 0, 0, board.logic_luts(record)
    return 0, 0, 0        # spram


def _options(record, board):
    """The kinds ``record`` may take on ``board``, cheapest first by yosys' own cost model
    (memory_libmap: a block costs ``block_ram.cost``, a distributed unit
    ``distributed.cost``, a bit of logic 1, of a ROM in logic 1/16), which is also what
    yosys would pick by itself."""
    if record.rom and record.used_width == 0:
        return ["logic"]                 # every row the same: yosys keeps no memory
    costs = {"block": board.block_ram.cost * board.block_ram.blocks(record),
             "logic": record.bits * record.read_ports / (16 if record.rom else 1)}
    if board.distributed is not None and board.distributed.units(record):
        costs["distributed"] = board.distributed.cost * board.distributed.units(record)
    return sorted(costs, key=lambda kind: (costs[kind], kind))


def _totals(records, kinds, board):
    used = [_usage(r, kinds[r.name], board) for r in records]
    return tuple(sum(u[i] for u in used) for i in range(3))


def _fits(records, kinds, board, lut_budget):
    blocks, units, luts = _totals(records, kinds, board)
    return blocks <= board.blocks and units <= board.lutram_units and luts <= lut_budget


def _to_spram(records, kinds, board):
    """iCE40 UltraPlus: the largest weight and single-port memories to SPRAM while the
    blocks run short."""
    used = 0
    for record in sorted((r for r in records if r.weights or r.single_port),
                         key=lambda r: -r.bits):
        if _totals(records, kinds, board)[0] <= board.blocks:
            break
        if used + record.spram_count <= board.spram:
            kinds[record.name] = "spram"
            used += record.spram_count


def _spill(records, kinds, board, lut_budget):
    """Block memories to distributed RAM or logic, the cheapest in LUTs per block freed
    first, while the blocks run short and the LUTs last."""
    def price(record):
        blocks = board.block_ram.blocks(record)
        kind = min((k for k in ("distributed", "logic") if k in _options(record, board)),
                   key=lambda k: _usage(record, k, board)[2])
        return _usage(record, kind, board)[2] / max(blocks, 1), kind

    movable = [r for r in records if kinds[r.name] == "block"]
    for record in sorted(movable, key=lambda r: price(r)[0]):
        if _totals(records, kinds, board)[0] <= board.blocks:
            break
        trial = dict(kinds, **{record.name: price(record)[1]})
        blocks, units, luts = _totals(records, trial, board)
        if units <= board.lutram_units and luts <= lut_budget:
            kinds.update(trial)


def _relieve_lutram(records, kinds, board, lut_budget):
    """Distributed memories to block RAM (or logic), the largest first, while the LUT-RAM
    sites run short."""
    spread = [r for r in records if kinds[r.name] == "distributed"]
    for record in sorted(spread, key=lambda r: -board.distributed.units(r)):
        if _totals(records, kinds, board)[1] <= board.lutram_units:
            break
        for kind in ("block", "logic"):
            trial = dict(kinds, **{record.name: kind})
            blocks, _, luts = _totals(records, trial, board)
            if blocks <= board.blocks and luts <= lut_budget:
                kinds.update(trial)
                break


def _slice(records, kinds, board):
    """ECP5: weights deeper than one block, one 1-bit-wide memory per bit when the blocks
    are there (no wide read mux behind blocks cascaded in depth)."""
    if not board.block_ram.deepest:
        return
    for record in records:
        if record.weights and kinds[record.name] == "block" and \
                record.depth > board.block_ram.shapes[0][1]:
            trial = dict(kinds, **{record.name: "sliced"})
            if _totals(records, trial, board)[0] <= board.blocks:
                kinds.update(trial)


def _fill(records, kinds, board):
    """Spare block RAM takes the memories in logic, largest first (on iCE40 a 256-bit
    memory in flip-flops costs ~400 logic cells), but not a ROM that logic holds in few
    LUTs and reads sooner (``block_ram.logic_rom_luts``)."""
    for record in sorted(records, key=lambda r: -r.bits):
        if kinds[record.name] != "logic" or \
                (record.rom and board.logic_luts(record) <= board.block_ram.logic_rom_luts):
            continue
        trial = dict(kinds, **{record.name: "block"})
        if _totals(records, trial, board)[0] <= board.blocks:
            kinds.update(trial)


def plan_memories(records, board, *, lut_budget=None) -> MemoryPlan:
    """Where each of ``records`` goes on ``board`` (its ``block_ram``, ``distributed``,
    ``spram``, ``blocks``, ``lutram_units``, ``logic_luts``): yosys' own choice first, then,
    while the block RAMs run short, weights to SPRAM and the memories cheapest to move to
    distributed RAM or logic (within ``lut_budget`` LUTs), then spare blocks take memories
    back from logic (on ECP5 not the small ROMs). The plan may not fit (:meth:`MemoryPlan` totals against the board);
    the caller decides."""
    records = tuple(records)
    lut_budget = board.luts if lut_budget is None else lut_budget
    kinds = {r.name: _options(r, board)[0] for r in records}
    if board.spram:
        _to_spram(records, kinds, board)
    _spill(records, kinds, board, lut_budget)
    if board.distributed is not None:
        _relieve_lutram(records, kinds, board, lut_budget)
    _slice(records, kinds, board)
    _fill(records, kinds, board)
    blocks, units, luts = _totals(records, kinds, board)
    spram = SpramPlan.of([r for r in records if kinds[r.name] == "spram" and r.weights])
    return MemoryPlan(records, kinds, blocks, units, luts, spram)


def _spram(m, name, address, data_in, mask, write, data_out, domain, model, select=1):
    """One SB_SPRAM256KA (``model``: a behavioural model, for Amaranth's simulator);
    ``DATAOUT`` holds in a cycle without ``select`` (``CHIPSELECT`` low)."""
    if not model:
        m.submodules[name] = Instance(
            "SB_SPRAM256KA", i_ADDRESS=address, i_DATAIN=data_in, i_MASKWREN=mask,
            i_WREN=write, i_CHIPSELECT=select, i_CLOCK=ClockSignal(domain), i_STANDBY=0,
            i_SLEEP=0, i_POWEROFF=1, o_DATAOUT=data_out)
        return
    m.submodules[name] = cells = memory.Memory(shape=SPRAM_WIDTH, depth=SPRAM_DEPTH, init=[])
    w, r = cells.write_port(domain=domain, granularity=4), cells.read_port(domain=domain)
    m.d.comb += [w.addr.eq(address), w.data.eq(data_in), w.en.eq(Mux(write, mask, 0)),
                 r.addr.eq(address), r.en.eq(select), data_out.eq(r.data)]


class SpramWeights(Elaboratable):
    """A weight memory (one synchronous read port; its data held while not enabled) in
    SB_SPRAM256KA blocks, written byte by byte from the link's ``load`` bus: image byte
    ``base + row * stride + k`` is byte ``k`` of ``row`` (``model=True`` uses a behavioural model of the SPRAM, for
    simulation). A load byte is decoded (is it ours, which row, which byte of it) and then
    registered, so the write decision, the address select and the row start at flip-flops
    instead of at the link's receive logic: a byte is written one cycle after the link
    offers it (the host's next byte is a UART frame away)."""

    def __init__(self, mem, load, base, *, model=False):
        (self.read,) = mem.read_ports
        self.width, self.depth = Shape.cast(mem.shape).width, mem.depth
        self.load, self.base, self.model = load, base, model

    def elaborate(self, platform):
        m = Module()
        read, load = self.read, self.load
        row_bytes = (self.width + 7) // 8
        shift = (row_bytes - 1).bit_length()
        wide = math.ceil(self.width / SPRAM_WIDTH)
        deep = math.ceil(self.depth / SPRAM_DEPTH)
        offset = Signal(len(load.address) + 1)
        m.d.comb += offset.eq(load.address - self.base)
        row, byte = offset[shift:], offset[:shift] if shift else Const(0, 1)
        # registered: the byte being written, its row, its place in the row, and whether
        # it is ours
        active = Signal()
        this_row = Signal(range(max(self.depth, 2)))
        this_byte = Signal(max(shift, 1))
        data = Signal(8)
        m.d.sync += [active.eq(load.valid & (load.address >= self.base) &
                               (row < self.depth) & (byte < row_bytes)),
                     this_row.eq(row), this_byte.eq(byte), data.eq(load.byte)]
        address = Signal(range(max(self.depth, 2)))
        m.d.comb += address.eq(Mux(active, this_row, read.addr))
        address14 = Signal(14)
        m.d.comb += address14.eq(address)
        bank = address[14:] if deep > 1 else Const(0, 1)
        bank_read = Signal.like(bank)
        m.d.sync += bank_read.eq(bank)
        rows = []
        for d in range(deep):
            slices = []
            for s in range(wide):
                out = Signal(SPRAM_WIDTH, name=f"spram{d}_{s}_out")
                write = active & (bank == d) & ((this_byte >> 1) == s)
                _spram(m, f"spram{d}_{s}", address14, Cat(data, data),
                       Mux(this_byte[0], 0b1100, 0b0011), write, out, read.domain, self.model,
                       select=read.en | write)
                slices.append(out)
            rows.append(Cat(*slices)[:self.width])
        word = rows[0]
        for d in range(1, deep):
            word = Mux(bank_read == d, rows[d], word)
        m.d.comb += read.data.as_value().eq(word)
        return m


class SpramMembranes(Elaboratable):
    """A single-port RAM (:class:`~onespike.hdl.single_port.SinglePortMembranes`: one
    read and one write port, never both enabled in a cycle) in SB_SPRAM256KA blocks, which
    need no initial contents (the core writes every word after a reset)."""

    def __init__(self, mem, *, model=False):
        (self.read,), (self.write,) = mem.read_ports, mem.write_ports
        self.width, self.depth, self.model = Shape.cast(mem.shape).width, mem.depth, model

    def elaborate(self, platform):
        m = Module()
        read, write = self.read, self.write
        record = MemoryRecord("", self.width, self.depth, 1, 1, False, single_port=True)
        tail = record.spram_tail
        wide = math.ceil((self.width - tail) / SPRAM_WIDTH)
        deep = math.ceil(self.depth / SPRAM_DEPTH)
        address = Signal(range(max(self.depth, 2)))
        m.d.comb += address.eq(Mux(write.en, write.addr, read.addr))
        address14 = Signal(14)
        m.d.comb += address14.eq(address)
        bank = address[14:] if deep > 1 else Const(0, 1)
        bank_read = Signal.like(bank)
        m.d.sync += bank_read.eq(bank)          # renamed to the ports' domain below
        data_in = Signal(wide * SPRAM_WIDTH + tail)
        m.d.comb += data_in.eq(Value.cast(write.data))
        rows = []
        for d in range(deep):
            slices = []
            for s in range(wide):
                out = Signal(SPRAM_WIDTH, name=f"spram{d}_{s}_out")
                _spram(m, f"spram{d}_{s}", address14,
                       data_in[s * SPRAM_WIDTH:(s + 1) * SPRAM_WIDTH], 0b1111,
                       write.en & (bank == d), out, read.domain, self.model)
                slices.append(out)
            rows.append(Cat(*slices)[:self.width - tail])
        word = rows[0]
        for d in range(1, deep):
            word = Mux(bank_read == d, rows[d], word)
        if tail:           # the top bits in a block RAM, at the same address
            m.submodules.tail = bits = memory.Memory(shape=tail, depth=self.depth, init=[])
            bits.attrs["ram_style"] = "block"
            w, r = bits.write_port(), bits.read_port()
            m.d.comb += [w.addr.eq(address), w.en.eq(write.en), r.addr.eq(address),
                         w.data.eq(data_in[self.width - tail:])]
            word = Cat(word, r.data)
        m.d.comb += Value.cast(read.data).eq(word)
        return DomainRenamer({"sync": read.domain})(m)


class SlicedWeights(Elaboratable):
    """A weight memory (synchronous read ports only) as one memory per bit: a deep memory
    then fills 1-bit-wide block RAMs (16 K deep on ECP5) without the wide read mux that
    cascading blocks in depth needs."""

    def __init__(self, mem):
        (self.read,) = mem.read_ports
        self.depth, self.rows = mem.depth, init_rows(mem)
        self.width = Shape.cast(mem.shape).width

    def elaborate(self, platform):
        m = Module()
        bits = []
        for b in range(self.width):
            # an instance, not a Memory: the platform's get_memory must not see (and count)
            # these; without ram_style, yosys would put short ones in LUT RAM
            bit = MemoryInstance(data=MemoryData(shape=1, depth=self.depth,
                                                 init=[(r >> b) & 1 for r in self.rows]),
                                 attrs={"ram_style": "block"})
            data_bit = Signal(name=f"bit{b}")
            bit.read_port(domain=self.read.domain, addr=self.read.addr, data=data_bit,
                          en=self.read.en, transparent_for=())
            m.submodules[f"bit{b}"] = bit
            bits.append(data_bit)
        m.d.comb += self.read.data.as_value().eq(Cat(*bits))
        return m


class MemoryMapper(_Slots):
    """Platform mixin: every memory becomes a slot while the design elaborates;
    :meth:`place` then builds each the way :meth:`configure`'s ``kinds`` (name → kind of
    :data:`KINDS`) says, looked up by its path: ``block``/``distributed``/``logic`` as a
    yosys ``ram_style``, ``spram`` as :class:`SpramWeights` on the link's ``load`` bus,
    ``sliced`` as :class:`SlicedWeights`. A memory the plan does not name keeps yosys'
    own choice unless ``strict``."""

    kinds = {}
    spram_plan = SpramPlan()
    load_bus = None
    strict = False
    spram_model = False      # a behavioural SPRAM, for Amaranth's simulator

    def configure(self, *, kinds=None, spram_plan=SpramPlan(), load_bus=None, strict=False):
        self.kinds, self.spram_plan = dict(kinds or {}), spram_plan
        self.load_bus, self.strict = load_bus, strict
        return self

    def place(self, fragment, prefix=""):
        """Replace every memory slot under ``fragment`` (names relative to it, after
        ``prefix``) by its implementation; returns ``fragment``."""
        for name, parent, index, slot in list(_slots(fragment)):
            name = prefix + name
            implementation = self._implement(name, self.slot_memory(slot))
            _, sub_name, src_loc = parent.subfragments[index]
            parent.subfragments[index] = (Fragment.get(implementation, None), sub_name,
                                          src_loc)
        return fragment

    def _implement(self, name, mem):
        kind = self.kinds.get(name)
        if kind is None and self.strict:
            raise OnespikeError(f"memory {name} is not in the board's memory plan")
        if kind == "spram" and mem.attrs.get("onespike_role") == SINGLE_PORT_ROLE:
            return SpramMembranes(mem, model=self.spram_model)
        if kind in ("spram", "sliced"):
            if mem.write_ports or len(mem.read_ports) != 1:
                raise OnespikeError(f"memory {name} cannot go to {kind}: only weight "
                                    f"memories with one read port can")
            if kind == "sliced":
                return SlicedWeights(mem)
            placed = self.spram_plan.entry(name)
            if placed is None or placed[0].width != Shape.cast(mem.shape).width:
                raise OnespikeError(f"memory {name} is planned for SPRAM without a place in "
                                    f"the load image")
            return SpramWeights(mem, self.load_bus, placed[1], model=self.spram_model)
        for attr in ("onespike_role", "onespike_name"):
            mem.attrs.pop(attr, None)
        if kind is not None:
            mem.attrs["ram_style"] = kind
        return _Builtin(mem)


class _Builtin(Elaboratable):
    """A memory built by Amaranth itself (a ``MemoryInstance`` with its attributes)."""

    def __init__(self, mem):
        self.memory = mem

    def elaborate(self, platform):
        return memory.Memory.elaborate(self.memory, None)


def all_weights_in_spram(make_link, *, model=False):
    """``(top, link, plan)``: the link from ``make_link(load_bytes)`` with every weight
    memory and every single-port membrane memory in SPRAM, ``top`` its
    :class:`OnPlatform` wrapper (simulation and tests)."""
    records = [r for r in inventory(make_link(0)) if r.weights or r.single_port]
    plan = SpramPlan.of([r for r in records if r.weights])
    link = make_link(plan.load_bytes)
    platform = MemoryMapper().configure(kinds={r.name: "spram" for r in records},
                                        spram_plan=plan, load_bus=link.load)
    platform.spram_model = model
    return OnPlatform(link, platform), link, plan


class OnPlatform(wiring.Component):
    """``inner`` (a component) elaborated for ``platform`` (a :class:`MemoryMapper`) with
    the same ports, for simulating or writing Verilog of a board's memory mapping. Memory
    names are paths below ``inner``, as :func:`inventory` gives them."""

    def __init__(self, inner, platform):
        self._inner, self._platform = inner, platform
        super().__init__(inner.signature)

    def elaborate(self, _):
        m = Module()
        m.submodules.inner = self._platform.place(Fragment.get(self._inner, self._platform))
        for path, member, ours in self.signature.flatten(self):
            theirs = self._inner
            for part in path:
                theirs = theirs[part] if isinstance(part, int) else getattr(theirs, part)
            if member.flow == wiring.In:
                m.d.comb += theirs.eq(ours)
            else:
                m.d.comb += ours.eq(theirs)
        return m
