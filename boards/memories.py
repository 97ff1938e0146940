"""How a board maps the accelerator's memories: block RAM, logic, or (iCE40 UltraPlus) the
single-port SPRAMs, which a bitstream cannot initialise, so weights placed there are loaded
at run time over the host link (LOAD frames, in the byte order of :func:`load_image`).

The hdl marks weight memories with the attribute ``onespike_role = "weights"``; nothing else
about boards reaches ``hdl/``.
"""

import math
from dataclasses import dataclass

from amaranth.hdl import (Cat, ClockSignal, Const, Elaboratable, Fragment, Instance,
                          MemoryData, MemoryInstance, Module, Mux, Shape, Signal)
from amaranth.lib import data, memory, wiring

from onespike.hdl.streams import discard

__all__ = ["MemoryRecord", "inventory", "SpramPlan", "plan_spram", "load_image",
           "MemoryMapper", "SpramWeights", "SlicedWeights", "OnPlatform", "init_rows",
           "all_weights_in_spram",
           "SPRAM_WIDTH", "SPRAM_DEPTH"]

SPRAM_WIDTH, SPRAM_DEPTH = 16, 16384    # SB_SPRAM256KA


@dataclass(frozen=True)
class MemoryRecord:
    width: int
    depth: int
    weights: bool
    init: tuple          # rows as unsigned ints (weights only)

    @property
    def bits(self):
        return self.width * self.depth

    @property
    def spram_count(self):
        return math.ceil(self.width / SPRAM_WIDTH) * math.ceil(self.depth / SPRAM_DEPTH)

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


class _Recorder:
    def __init__(self):
        self.memories = []

    def get_memory(self, mem):
        width = Shape.cast(mem.shape).width
        weights = mem.attrs.get("onespike_role") == "weights"
        rows = init_rows(mem) if weights else ()
        self.memories.append(MemoryRecord(width, mem.depth, weights, rows))
        return Module()


def inventory(top) -> list:
    """Every memory ``top`` elaborates to, in elaboration order (which the board's mapping
    sees in the same order)."""
    recorder = _Recorder()
    Fragment.get(top, recorder)
    return recorder.memories


@dataclass(frozen=True)
class SpramPlan:
    """Which weight memories (by their number among the weight memories, in elaboration
    order) live in SPRAM, and where each starts in the load image."""
    entries: tuple       # (weight memory number, MemoryRecord, byte offset)

    @property
    def load_bytes(self):
        return sum(r.depth * r.row_stride for _, r, _ in self.entries)

    @property
    def sprams(self):
        return sum(r.spram_count for _, r, _ in self.entries)

    def entry(self, number):
        return next(((r, base) for n, r, base in self.entries if n == number), None)


def plan_spram(memories, *, sprams: int, blocks_free, block_cost) -> SpramPlan:
    """Move the largest weight memories to SPRAM until the rest fits ``blocks_free`` block
    RAMs (``block_cost(record)`` blocks each) or the SPRAMs run out."""
    weights = [(n, r) for n, r in enumerate(m for m in memories if m.weights)]
    need = sum(block_cost(m) for m in memories)
    chosen, used = [], 0
    for n, record in sorted(weights, key=lambda nr: -nr[1].bits):
        if need <= blocks_free:
            break
        if used + record.spram_count <= sprams:
            chosen.append((n, record))
            used += record.spram_count
            need -= block_cost(record)
    entries, offset = [], 0
    for n, record in sorted(chosen, key=lambda nr: nr[0]):
        entries.append((n, record, offset))
        offset += record.depth * record.row_stride
    return SpramPlan(tuple(entries))


def load_image(plan: SpramPlan) -> bytes:
    """The run-time weights: each SPRAM memory's rows, little-endian, ``row_stride`` bytes
    each (zero-padded)."""
    out = bytearray()
    for _, record, _ in plan.entries:
        out += b"".join(row.to_bytes(record.row_stride, "little") for row in record.init)
    return bytes(out)


class SpramWeights(Elaboratable):
    """A weight memory (one synchronous read port, always enabled) in SB_SPRAM256KA blocks,
    written byte by byte from the link's ``load`` bus: image byte ``base + row * stride + k``
    is byte ``k`` of ``row`` (``model=True`` uses a behavioural model of the SPRAM, for
    simulation)."""

    def __init__(self, mem, load, base, *, model=False):
        (self.read,) = mem.read_ports
        assert not mem.write_ports
        self.width, self.depth = Shape.cast(mem.shape).width, mem.depth
        self.load, self.base, self.model = load, base, model

    def _spram(self, m, name, address, data_in, mask, write, data_out, domain):
        if not self.model:
            m.submodules[name] = Instance(
                "SB_SPRAM256KA", i_ADDRESS=address, i_DATAIN=data_in, i_MASKWREN=mask,
                i_WREN=write, i_CHIPSELECT=1, i_CLOCK=ClockSignal(domain), i_STANDBY=0,
                i_SLEEP=0, i_POWEROFF=1, o_DATAOUT=data_out)
            return
        m.submodules[name] = model = memory.Memory(shape=SPRAM_WIDTH, depth=SPRAM_DEPTH,
                                                   init=[])
        w, r = model.write_port(domain=domain, granularity=4), model.read_port(domain=domain)
        m.d.comb += [w.addr.eq(address), w.data.eq(data_in), w.en.eq(Mux(write, mask, 0)),
                     r.addr.eq(address), data_out.eq(r.data)]

    def elaborate(self, platform):
        m = Module()
        read, load = self.read, self.load
        row_bytes = (self.width + 7) // 8
        shift = (row_bytes - 1).bit_length()
        wide = math.ceil(self.width / SPRAM_WIDTH)
        deep = math.ceil(self.depth / SPRAM_DEPTH)
        offset = Signal(len(load.address) + 1)
        m.d.comb += offset.eq(load.address - self.base)
        this_row = offset[shift:]
        this_byte = offset[:shift] if shift else Const(0, 1)
        active = load.valid & (load.address >= self.base) & \
            (this_row < self.depth) & (this_byte < row_bytes)
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
                self._spram(m, f"spram{d}_{s}", address14, Cat(load.byte, load.byte),
                            Mux(this_byte[0], 0b1100, 0b0011), write, out, read.domain)
                slices.append(out)
            rows.append(Cat(*slices)[:self.width])
        word = rows[0]
        for d in range(1, deep):
            word = Mux(bank_read == d, rows[d], word)
        m.d.comb += read.data.as_value().eq(word)
        return m


class SlicedWeights(Elaboratable):
    """A weight memory (synchronous read ports only) as one memory per bit: a deep memory
    then fills 1-bit-wide block RAMs (16 K deep on ECP5) without the wide read mux that
    cascading blocks in depth needs."""

    def __init__(self, mem):
        (self.read,) = mem.read_ports
        assert not mem.write_ports
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


class MemoryMapper:
    """Platform mixin: ``get_memory`` as the board wants it. ``memory_style(number, width,
    depth)`` gives a yosys ``ram_style`` (or None); :meth:`configure` says which weight
    memories go to SPRAM (fed by the link's ``load`` bus) or are bit-sliced, and overrides
    styles by memory number (elaboration order); the board top calls it before
    elaboration."""

    spram_plan = SpramPlan(())
    sliced = frozenset()
    styles = {}
    load_bus = None
    spram_model = False      # a behavioural SPRAM, for Amaranth's simulator

    def configure(self, *, spram_plan=SpramPlan(()), load_bus=None, sliced=frozenset(),
                  styles=None):
        self.spram_plan, self.load_bus = spram_plan, load_bus
        self.sliced, self.styles = frozenset(sliced), dict(styles or {})
        return self

    def memory_style(self, number, width, depth):
        return None

    def get_memory(self, mem):
        width = Shape.cast(mem.shape).width
        memory_number = self._memories_seen = getattr(self, "_memories_seen", -1) + 1
        if mem.attrs.pop("onespike_role", None) == "weights":
            number = self._weights_seen = getattr(self, "_weights_seen", -1) + 1
            placed = self.spram_plan.entry(number)
            if placed is not None:
                record, base = placed
                assert (record.width, record.depth) == (width, mem.depth), \
                    "weight memories elaborated in another order than planned"
                return SpramWeights(mem, self.load_bus, base, model=self.spram_model)
            if number in self.sliced:
                return SlicedWeights(mem)
        style = self.memory_style(memory_number, width, mem.depth)
        if style is not None:
            mem.attrs["ram_style"] = style
        return memory.Memory.elaborate(mem, None)    # Amaranth's own, with these attrs


def all_weights_in_spram(make_link, *, model=False):
    """``(top, link, plan)``: the link from ``make_link(load_bytes)`` with every weight
    memory in SPRAM, ``top`` its :class:`OnPlatform` wrapper (simulation and tests)."""
    plan = plan_spram(inventory(discard(make_link(0))), sprams=64, blocks_free=0,
                      block_cost=lambda record: 1)
    link = make_link(plan.load_bytes)
    platform = MemoryMapper().configure(spram_plan=plan, load_bus=link.load)
    platform.spram_model = model
    return OnPlatform(link, platform), link, plan


class OnPlatform(wiring.Component):
    """``inner`` (a component) elaborated for ``platform`` (a :class:`MemoryMapper`) with
    the same ports, for simulating or writing Verilog of a board's memory mapping."""

    def __init__(self, inner, platform):
        self._inner, self._platform = inner, platform
        super().__init__(inner.signature)

    def elaborate(self, _):
        m = Module()
        m.submodules.inner = Fragment.get(self._inner, self._platform)
        for path, member, ours in self.signature.flatten(self):
            theirs = self._inner
            for part in path:
                theirs = theirs[part] if isinstance(part, int) else getattr(theirs, part)
            if member.flow == wiring.In:
                m.d.comb += theirs.eq(ours)
            else:
                m.d.comb += ours.eq(theirs)
        return m
