"""Boards: the accelerator behind a UART host link, built into bitstreams for real FPGAs
with open-source tools, and the host side.

``uart`` (8N1 receiver/transmitter) → ``link`` (:class:`LinkedAccelerator`, the framed
protocol of ``protocol``) → ``top`` (:class:`BoardTop` on a platform's pins, optional PLL from
``clocks``) → ``platforms`` (supported boards) and ``memories`` (how a board maps memories,
SPRAM weights) → ``build`` (``onespike build``). ``host`` is ``onespike run``; ``simboard``
serves the simulated link on a pty; ``simulate``/``testbench`` run the board top under cocotb.
"""
