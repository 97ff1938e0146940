"""Multiplies that synthesis cannot put into DSP blocks, for cores that must fit any board.

A plain ``*`` becomes a ``$mul`` cell, which yosys maps to MULT18X18D (ECP5) or MULT9X9
(Gowin) blocks when it can, and a board has few of them: the board flow does not plan DSP
blocks, so the cores multiply by small factors with shifted adds.
"""

from amaranth.hdl import Const, Mux

__all__ = ["multiply", "const_multiply", "const_divide"]


def multiply(weight, value, use_dsp: bool):
    """``weight · value`` (signed × unsigned). With ``use_dsp`` a plain ``*`` that synthesis
    may map to a DSP/MULT18 block; without, a tree of shifted adds, which yosys builds from
    LUTs only (no pass turns adds back into a multiplier)."""
    if use_dsp:
        return weight * value
    terms = [Mux(value[b], weight << b, 0) for b in range(len(value))]
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def const_multiply(value, k: int):
    """``value · k`` for a constant ``k ≥ 0`` as shifted adds in a balanced tree (no
    ``$mul`` cell for synthesis to put in a DSP block: index arithmetic by a map's width or a
    layer's groups costs one or two adders, not a chain of DSP blocks)."""
    terms = [value << b for b in range(k.bit_length()) if k >> b & 1]
    if not terms:
        return Const(0)
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def const_divide(value, k: int):
    """``value // k`` for an unsigned ``value`` and a constant ``k ≥ 1``: a shift for a power
    of two, else ``(value · m) >> s`` with ``m = ceil(2^s / k)``, ``s = width + ceil(log2 k)``
    (exact for every ``value`` of the width; no ``$div`` cell)."""
    if k & (k - 1) == 0:
        return value >> (k.bit_length() - 1)
    width = len(value)
    shift = width + (k - 1).bit_length()
    return const_multiply(value, -(-(1 << shift) // k)) >> shift
