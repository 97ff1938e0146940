"""Constant multiplies and divides built from shifts and adds: exact for every value of the
operand's width (simulated), and no multiplier or divider cell left for synthesis."""

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from onespike.hdl.arith import const_divide, const_multiply


def evaluate(width, function):
    """``{v: function(v)}`` for every unsigned ``v`` of ``width`` bits, in the simulator."""
    m = Module()
    value = Signal(width)
    result = function(value)
    out = Signal(result.shape())
    m.d.comb += out.eq(result)
    found = {}

    async def bench(ctx):
        for v in range(1 << width):
            ctx.set(value, v)
            found[v] = ctx.get(out)
    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return found, rtlil.convert(m, ports=[value, out])


@pytest.mark.parametrize("k", [0, 1, 2, 3, 5, 7, 12, 24, 25, 127])
def test_constant_multiply_is_exact_without_a_mul_cell(k):
    found, text = evaluate(7, lambda v: const_multiply(v, k))
    assert found == {v: v * k for v in range(1 << 7)}
    assert "$mul" not in text


@pytest.mark.parametrize("width", [1, 3, 6, 9])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 6, 7, 9, 11, 24])
def test_constant_divide_is_exact_without_a_div_cell(width, k):
    found, text = evaluate(width, lambda v: const_divide(v, k))
    assert found == {v: v // k for v in range(1 << width)}
    assert "$div" not in text and "$mul" not in text
