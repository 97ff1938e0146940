"""Amaranth generator of the TTFS accelerator (consumes only the IR; never imports torch)."""
