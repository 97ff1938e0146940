"""Amaranth's own yosys, for the Verilog writer and the board flow."""

from onespike.errors import OnespikeError

__all__ = ["find_yosys"]


def find_yosys(requirement):
    """The one adapter to Amaranth's private yosys finder (``amaranth._toolchain.yosys``,
    pinned amaranth 0.5.10 with its builtin-yosys extra): the yosys Amaranth itself would
    run (``YOSYS`` or the builtin WebAssembly one), an object with ``run(args, stdin,
    ignore_warnings=...)``, satisfying ``requirement(version)``."""
    try:
        from amaranth._toolchain.yosys import find_yosys as amaranth_find_yosys
    except ImportError:
        raise OnespikeError("this Amaranth has no yosys finder where onespike expects it "
                            "(amaranth 0.5.10); reinstall onespike") from None
    return amaranth_find_yosys(requirement)
