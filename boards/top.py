"""The board top: the linked accelerator on a board's UART pins, with two LEDs."""

from amaranth.build import ResourceError
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io

from onespike.boards.clocks import clock_domain
from onespike.boards.link import LinkedAccelerator
from onespike.boards.memories import SpramPlan
from onespike.boards.uart import divisor_for

__all__ = ["BoardTop", "DEFAULT_BAUD"]

DEFAULT_BAUD = 1_000_000    # the FTDI bridges of iCEBreaker, ULX3S and Tang Nano all do 1 Mbaud


class BoardTop(Elaboratable):
    """``net`` behind the host link on UART 0 of a platform clocked at ``clock_hz``.

    LED 0 lights while a frame is received or answered, LED 1 after an ``ERROR`` answer.
    A half-received frame times out after 50 ms. With a ``pll`` (:mod:`onespike.boards.clocks`)
    the design runs from its output instead of the oscillator. Weight memories in ``spram_plan`` are
    loaded at run time (the platform must be a :class:`~onespike.boards.memories.MemoryMapper`).
    """

    def __init__(self, net, *, lanes, clock_hz, baud=DEFAULT_BAUD, spram_plan=SpramPlan(()),
                 styles=None, sliced=frozenset(), pll=None):
        self.spram_plan, self.styles, self.pll = spram_plan, dict(styles or {}), pll
        self.sliced = sliced
        if pll is not None:
            clock_hz = round(pll.f_out)
        self.link = LinkedAccelerator(net, lanes=lanes, divisor=divisor_for(clock_hz, baud),
                                      timeout=clock_hz // 20, clock_hz=clock_hz,
                                      load_bytes=spram_plan.load_bytes)

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = self.link
        if self.pll is not None:
            clock_domain(m, platform, self.pll)
        platform.configure(spram_plan=self.spram_plan, load_bus=link.load,   # MemoryMapper
                           sliced=self.sliced, styles=self.styles)
        uart = platform.request("uart", 0, dir={"rx": "-", "tx": "-"})
        m.submodules.rx = rx = io.Buffer("i", uart.rx)
        m.submodules.tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [link.rx.eq(rx.i), tx.o.eq(link.tx)]
        for n, status in enumerate([link.busy, link.fault]):
            try:
                m.submodules[f"led{n}"] = led = io.Buffer("o", platform.request("led", n,
                                                                               dir="-"))
            except ResourceError:
                break
            m.d.comb += led.o.eq(status)
        return m
