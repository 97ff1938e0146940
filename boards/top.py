"""The board top: the linked accelerator on a board's UART pins, with two LEDs."""

from amaranth.build import ResourceError
from amaranth.hdl import Elaboratable, Module

from onespike.boards.link import LinkedAccelerator
from onespike.boards.memories import SpramPlan
from onespike.boards.uart import divisor_for

__all__ = ["BoardTop", "DEFAULT_BAUD"]

DEFAULT_BAUD = 1_000_000    # the FTDI bridges of iCEBreaker, ULX3S and Tang Nano all do 1 Mbaud


class BoardTop(Elaboratable):
    """``net`` behind the host link on UART 0 of a platform clocked at ``clock_hz``.

    LED 0 lights while a frame is received or answered, LED 1 after an ``ERROR`` answer.
    A half-received frame times out after 50 ms. Weight memories in ``spram_plan`` are
    loaded at run time (the platform must be a :class:`~onespike.boards.memories.MemoryMapper`).
    """

    def __init__(self, net, *, lanes, clock_hz, baud=DEFAULT_BAUD, spram_plan=SpramPlan(()),
                 styles=None):
        self.spram_plan, self.styles = spram_plan, dict(styles or {})
        self.link = LinkedAccelerator(net, lanes=lanes, divisor=divisor_for(clock_hz, baud),
                                      timeout=clock_hz // 20, clock_hz=clock_hz,
                                      load_bytes=spram_plan.load_bytes)

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = self.link
        # the platform is a MemoryMapper
        platform.spram_plan, platform.load_bus = self.spram_plan, link.load
        platform.styles = self.styles
        uart = platform.request("uart", 0)
        m.d.comb += [link.rx.eq(uart.rx.i), uart.tx.o.eq(link.tx)]
        for n, status in enumerate([link.busy, link.fault]):
            try:
                m.d.comb += platform.request("led", n).o.eq(status)
            except ResourceError:
                break
        return m
