"""onespike: trained ReLU networks → exact time-to-first-spike accelerators for FPGAs."""

from onespike.errors import OnespikeError
from onespike.ir import Network, load, save

__version__ = "0.1.0"
__all__ = ["OnespikeError", "Network", "load", "save", "convert", "__version__"]


def __getattr__(name):
    if name == "convert":  # imports torch: only when asked for
        from onespike.mapper import convert
        return convert
    raise AttributeError(name)
