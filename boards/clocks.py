"""Board clocks: the oscillator as is, or a PLL for ``onespike build --clock MHZ``
(iCE40 SB_PLL40_PAD, ECP5 EHXPLLL; the divider search follows the data sheets' limits)."""

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, Instance, Signal
from amaranth.lib import io

from onespike.errors import OnespikeError

__all__ = ["Ice40Pll", "Ecp5Pll", "pll_for", "clock_domain"]


@dataclass(frozen=True)
class Ice40Pll:
    """SB_PLL40 in SIMPLE feedback: f_out = f_in · (DIVF + 1) / ((DIVR + 1) · 2^DIVQ)."""
    f_in: float
    divr: int
    divf: int
    divq: int

    @property
    def f_out(self):
        return self.f_in * (self.divf + 1) / ((self.divr + 1) * 2 ** self.divq)

    @property
    def filter_range(self):
        f_pfd = self.f_in / (self.divr + 1)
        return next(n for n, top in enumerate((17e6, 26e6, 44e6, 66e6, 101e6), 1)
                    if f_pfd < top) if f_pfd < 101e6 else 6

    @classmethod
    def search(cls, f_in, f_want):
        best = None
        for divr in range(16):
            f_pfd = f_in / (divr + 1)
            if not 10e6 <= f_pfd <= 133e6:
                continue
            for divf in range(128):
                f_vco = f_pfd * (divf + 1)
                if not 533e6 <= f_vco <= 1066e6:
                    continue
                for divq in range(1, 7):
                    pll = cls(f_in, divr, divf, divq)
                    if best is None or abs(pll.f_out - f_want) < abs(best.f_out - f_want):
                        best = pll
        return best

    def instance(self, pad, clock_out, lock):
        return Instance("SB_PLL40_PAD", io_PACKAGEPIN=pad, o_PLLOUTGLOBAL=clock_out,
                        o_LOCK=lock, i_RESETB=1, i_BYPASS=0,
                        p_FEEDBACK_PATH="SIMPLE", p_DIVR=self.divr, p_DIVF=self.divf,
                        p_DIVQ=self.divq, p_FILTER_RANGE=self.filter_range)


@dataclass(frozen=True)
class Ecp5Pll:
    """EHXPLLL fed back from CLKOP: f_out = f_in · CLKFB_DIV / CLKI_DIV, and the VCO runs at
    f_out · CLKOP_DIV."""
    f_in: float
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def f_out(self):
        return self.f_in * self.clkfb_div / self.clki_div

    @classmethod
    def search(cls, f_in, f_want):
        best = None
        for clki in range(1, 129):
            if not 3.125e6 <= f_in / clki <= 400e6:
                continue
            for clkfb in range(1, 81):
                f_out = f_in * clkfb / clki
                if not 3.125e6 <= f_out <= 400e6:
                    continue
                for clkop in range(1, 129):
                    if 400e6 <= f_out * clkop <= 800e6:
                        pll = cls(f_in, clki, clkfb, clkop)
                        if best is None or abs(pll.f_out - f_want) < abs(best.f_out - f_want):
                            best = pll
                        break
        return best

    def instance(self, clock_in, clock_out, lock):
        return Instance(
            "EHXPLLL", i_CLKI=clock_in, o_CLKOP=clock_out, i_CLKFB=clock_out, o_LOCK=lock,
            i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1,
            i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_DIV=self.clkop_div, p_CLKOP_CPHASE=self.clkop_div - 1, p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP", p_CLKI_DIV=self.clki_div, p_CLKFB_DIV=self.clkfb_div,
            a_FREQUENCY_PIN_CLKI=f"{self.f_in / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{self.f_out / 1e6:g}", a_ICP_CURRENT="12",
            a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2")


def pll_for(family: str, f_in: float, f_want: float):
    """The PLL settings closest to ``f_want``; refuses more than 1 % off."""
    kinds = {"ice40": Ice40Pll, "ecp5": Ecp5Pll}
    if family not in kinds:
        raise OnespikeError(f"--clock needs a PLL, which onespike does not generate for "
                            f"{family} boards yet; leave out --clock to run at "
                            f"{f_in / 1e6:g} MHz")
    pll = kinds[family].search(f_in, f_want)
    if pll is None or abs(pll.f_out - f_want) > 0.01 * f_want:
        nearest = f" (nearest {pll.f_out / 1e6:.3f} MHz)" if pll else ""
        raise OnespikeError(f"the {family} PLL cannot make {f_want / 1e6:g} MHz from "
                            f"{f_in / 1e6:g} MHz{nearest}; pick another --clock")
    return pll


def clock_domain(m, platform, pll):
    """Create the ``sync`` domain from the board's oscillator through ``pll``; it stays in
    reset until the PLL locks."""
    m.domains.sync = sync = ClockDomain("sync")
    pad = platform.request(platform.default_clk, 0, dir="-")
    lock = Signal()
    if isinstance(pll, Ice40Pll):     # SB_PLL40_PAD takes the pin itself
        m.submodules.pll = pll.instance(pad.io, sync.clk, lock)
    else:
        m.submodules.clock_in = clock_in = io.Buffer("i", pad)
        m.submodules.pll = pll.instance(clock_in.i, sync.clk, lock)
    platform.add_clock_constraint(sync.clk, pll.f_out)
    m.d.comb += sync.rst.eq(~lock)
