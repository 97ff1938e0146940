"""A network's memory floor against a board's memory: the bits that no lane count can save
(every weight; one bank of every membrane), taken from the IR alone, before any Amaranth
component is built, against every memory kind the board has. A network over the floor
cannot fit at any lane count, so the planner refuses it at once, with what would fit:
fewer weight bits or a larger board."""

import math
from dataclasses import dataclass

import numpy as np

from onespike.boards.platforms import BOARDS
from onespike.hdl.recurrent import joint_layer
from onespike.ir import Recurrent, signed_bits

__all__ = ["Floor", "floor_of", "shortfall", "capacity_text", "larger_boards",
           "fewer_weight_bits"]

# LUT4 per bit in logic, as the planner counts them (``Board.logic_luts``): a ROM 0.46 per
# output bit for 16 rows, a RAM one per bit and read port (a membrane has two)
ROM_LUTS_PER_BIT = 0.46 / 16
RAM_LUTS_PER_BIT = 2


@dataclass(frozen=True)
class Floor:
    """Bits a network needs at any lane count: ``weights`` (ROM) and ``membranes``
    (RAM)."""
    weights: int
    membranes: int


def _varying(weight, bits) -> int:
    """Bits of the two's complement words of ``weight`` that are not the same in all."""
    masked = weight.reshape(-1).astype(np.int64) & ((1 << bits) - 1)
    if masked.size == 0:
        return 0
    return bin(int(np.bitwise_or.reduce(masked)) &
               ~int(np.bitwise_and.reduce(masked))).count("1")


def _weights(layer):
    """The weights one memory of ``layer``'s core holds: a recurrent layer's input and
    state weights side by side (:func:`~onespike.hdl.recurrent.joint_layer`)."""
    return joint_layer(layer).weight if isinstance(layer, Recurrent) else layer.weight


def floor_of(net, weight_bits=None) -> Floor:
    """The memory floor of ``net``; ``weight_bits``: as if its weights had that many bits
    (each weight word one bit narrower per bit less, its membranes as they are)."""
    weights = membranes = 0
    for layer, width in zip(net.layers, net.widths()):
        if not hasattr(layer, "weight"):
            continue
        weight = _weights(layer)
        bits = signed_bits(int(np.abs(weight).max(initial=0)))
        used = _varying(weight, bits)
        if weight_bits is not None:
            used = max(used - max(bits - weight_bits, 0), 0)
        weights += weight.size * used
        banks = 2 if isinstance(layer, Recurrent) or layer.is_readout else 1   # can't halve
        membranes += banks * int(np.prod(layer.out_shape)) * width.membrane_bits
    return Floor(weights, membranes)


def _block_bits(board) -> int:
    return max(w * d for w, d in board.block_ram.shapes)


def shortfall(floor: Floor, board, luts) -> int:
    """LUT4 over ``luts`` that the floor needs in logic once the membranes fill LUT RAM,
    and membranes and weights together fill block RAM and SPRAM (single-port membranes,
    :mod:`~onespike.hdl.single_port`); what is left goes to logic, the weights first (a ROM
    bit costs far fewer LUTs than a RAM bit). 0: the floor fits."""
    lutram = board.lutram_units * (board.distributed.width * board.distributed.depth
                                   if board.distributed else 0)
    blocks = board.blocks * _block_bits(board)
    spram = board.spram * 256 * 1024
    ram_rest = max(floor.membranes - lutram, 0)
    rest = max(ram_rest + floor.weights - blocks - spram, 0)
    rom_rest = min(rest, floor.weights)
    need = RAM_LUTS_PER_BIT * (rest - rom_rest) + math.ceil(ROM_LUTS_PER_BIT * rom_rest)
    return max(need - max(int(luts), 0), 0)


def capacity_text(board) -> str:
    """The board's memories in kbit, every kind."""
    kind = board.block_ram.name.split(" (")[0]
    parts = [f"{board.blocks} {kind} blocks ({board.blocks * _block_bits(board) // 1024} "
             f"kbit)"]
    if board.spram:
        parts.append(f"{board.spram} SPRAM ({board.spram * 256} kbit)")
    if board.lutram_units:
        bits = board.lutram_units * board.distributed.width * board.distributed.depth
        parts.append(f"{board.lutram_units} LUT-RAM units ({bits // 1024} kbit)")
    return " + ".join(parts)


def larger_boards(net, current, luts_left) -> list:
    """Names of the other boards (fewest LUTs first) whose memory holds ``net``'s floor,
    ``luts_left(board)``: the LUTs each has for memories in logic."""
    floor = floor_of(net)
    return [b.name for b in sorted(BOARDS.values(), key=lambda b: b.luts)
            if b.name != current.name and shortfall(floor, b, luts_left(b)) == 0]


def fewer_weight_bits(net, board, luts):
    """The most weight bits (below the network's) at which its floor fits ``board``, or
    None."""
    bits = max((signed_bits(int(np.abs(_weights(layer)).max(initial=0)))
                for layer in net.layers if hasattr(layer, "weight")), default=0)
    return next((b for b in range(bits - 1, 1, -1)
                 if shortfall(floor_of(net, b), board, luts) == 0), None)
