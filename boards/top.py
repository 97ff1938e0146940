"""The board top: the linked accelerator on a board's UART pins, with two LEDs."""

from amaranth.build import ResourceError
from amaranth.hdl import Elaboratable, Fragment, Module
from amaranth.lib import io

from onespike.boards.clocks import clock_domain
from onespike.boards.link import LinkedAccelerator
from onespike.boards.uart import divisor_for

__all__ = ["BoardTop", "DEFAULT_BAUD"]

DEFAULT_BAUD = 1_000_000    # the FTDI bridges of iCEBreaker, ULX3S and Tang Nano all do 1 Mbaud


class BoardTop(Elaboratable):
    """``net`` behind the host link on UART 0 of a platform clocked at ``clock_hz``.

    LED 0 lights while a frame is received or answered, LED 1 after an ``ERROR`` answer.
    A half-received frame times out after 50 ms. With a ``pll`` (:mod:`onespike.boards.clocks`)
    the design runs from its output instead of the oscillator. ``memory_plan`` says where
    each memory of the link goes, by name (the platform must be a
    :class:`~onespike.boards.memories.MemoryMapper`); weight memories it puts in SPRAM are
    loaded at run time. ``lanes``: one count or one per layer; ``coding``, ``use_dsp``,
    ``firing``, ``membranes``: as for :class:`~onespike.boards.link.LinkedAccelerator`.
    """

    def __init__(self, net, *, lanes, clock_hz, baud=DEFAULT_BAUD, memory_plan=None,
                 pll=None, coding="ttfs", use_dsp=True, firing="auto", membranes="dual",
                 encoder_banks=2):
        self.memory_plan, self.pll = memory_plan, pll
        load_bytes = memory_plan.spram_plan.load_bytes if memory_plan else 0
        if pll is not None:
            clock_hz = round(pll.f_out)
        self.link = LinkedAccelerator(net, lanes=lanes, divisor=divisor_for(clock_hz, baud),
                                      timeout=clock_hz // 20, clock_hz=clock_hz,
                                      load_bytes=load_bytes, coding=coding, use_dsp=use_dsp,
                                      firing=firing, membranes=membranes,
                                      encoder_banks=encoder_banks)

    def elaborate(self, platform):
        m = Module()
        link = self.link
        plan = self.memory_plan
        if hasattr(platform, "place"):           # a MemoryMapper: memories by name
            if plan is not None:
                platform.configure(kinds=plan.kinds, spram_plan=plan.spram_plan,
                                   load_bus=link.load, strict=True)
            m.submodules.link = platform.place(Fragment.get(link, platform))
        else:
            m.submodules.link = link
        if self.pll is not None:
            clock_domain(m, platform, self.pll)
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
