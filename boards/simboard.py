"""A simulated board behind a pseudo-terminal: the real :class:`LinkedAccelerator` in
Amaranth's simulator, its UART pins bridged to a pty, so the host runner can be tested (and
tried) without hardware. Bytes can be corrupted on the way to test the error paths."""

import os
import threading

from amaranth.hdl import Module
from amaranth.sim import Simulator

__all__ = ["SimulatedBoard"]


class SimulatedBoard:
    """Serve ``link`` (a :class:`~onespike.boards.link.LinkedAccelerator`, inside ``top``
    when given) on a new pty;
    :attr:`port` is the device path a host opens. ``flip_reply_bytes`` /
    ``flip_request_bytes``: numbers (counting from 0 over the whole session) of the bytes to
    send with one bit flipped, board → host and host → board."""

    def __init__(self, link, *, top=None, flip_reply_bytes=(), flip_request_bytes=()):
        import tty

        self.link, self._top = link, top or link
        self._master, slave = os.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self._slave = slave
        self._flip_reply, self._flip_request = set(flip_reply_bytes), set(flip_request_bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.error = None

    def __enter__(self):
        os.set_blocking(self._master, False)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        os.close(self._master)
        os.close(self._slave)
        if self.error is not None and exc[0] is None:
            raise self.error

    def _serve(self):
        try:
            self._simulate()
        except Exception as e:      # reported by __exit__
            self.error = e

    def _simulate(self):
        link, master = self._top, self._master     # its rx/tx are the link's
        divisor = self.link.divisor
        m = Module()
        m.submodules.top = self._top
        sim = Simulator(m)
        sim.add_clock(1e-8)
        counts = {"in": 0, "out": 0}

        async def to_board(ctx):
            ctx.set(link.rx, 1)
            while not self._stop.is_set():
                try:
                    data = os.read(master, 4096)
                except BlockingIOError:
                    data = b""
                if not data:
                    await ctx.tick().repeat(20 * divisor)
                    continue
                for byte in data:
                    if counts["in"] in self._flip_request:
                        byte ^= 0x10
                    counts["in"] += 1
                    for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                        ctx.set(link.rx, bit)
                        await ctx.tick().repeat(divisor)

        async def from_board(ctx):
            while True:
                await ctx.negedge(link.tx)
                await ctx.tick().repeat(divisor + divisor // 2)
                byte = 0
                for i in range(8):
                    byte |= ctx.get(link.tx) << i
                    await ctx.tick().repeat(divisor)
                if counts["out"] in self._flip_reply:
                    byte ^= 0x01
                counts["out"] += 1
                os.write(master, bytes([byte]))

        sim.add_testbench(to_board)
        sim.add_testbench(from_board, background=True)
        sim.run()
