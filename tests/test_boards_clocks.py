"""PLL divider search: exact frequencies within the data sheets' limits, clear refusals."""

import pytest

from onespike.boards.clocks import Ecp5Pll, Ice40Pll, pll_for
from onespike.errors import OnespikeError


@pytest.mark.parametrize("mhz", [18, 24, 30, 36, 48])
def test_ice40_pll_from_12_mhz(mhz):
    pll = pll_for("ice40", 12e6, mhz * 1e6)
    assert isinstance(pll, Ice40Pll) and pll.f_out == pytest.approx(mhz * 1e6)
    f_pfd = 12e6 / (pll.divr + 1)
    assert 10e6 <= f_pfd <= 133e6 and 533e6 <= f_pfd * (pll.divf + 1) <= 1066e6
    assert 1 <= pll.divq <= 6 and 1 <= pll.filter_range <= 6


@pytest.mark.parametrize("mhz", [40, 50, 62.5, 75, 100])
def test_ecp5_pll_from_25_mhz(mhz):
    pll = pll_for("ecp5", 25e6, mhz * 1e6)
    assert isinstance(pll, Ecp5Pll) and pll.f_out == pytest.approx(mhz * 1e6)
    assert 400e6 <= pll.f_out * pll.clkop_div <= 800e6


def test_unreachable_or_unsupported_clocks_are_refused():
    with pytest.raises(OnespikeError, match="cannot make 1000 MHz from 12 MHz"):
        pll_for("ice40", 12e6, 1000e6)
    with pytest.raises(OnespikeError, match="does not generate for gowin boards yet"):
        pll_for("gowin", 27e6, 50e6)
