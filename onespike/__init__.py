"""onespike: trained ReLU networks → exact time-to-first-spike accelerators for FPGAs."""

from onespike.errors import OnespikeError
from onespike.ir import Network, load, save

__version__ = "0.1.0"
__all__ = ["OnespikeError", "Network", "load", "save", "convert", "finetune", "plan",
           "generate", "verify", "__version__"]

# the commands' Python forms, imported when asked for (the mapper imports torch)
_LAZY = {"convert": "onespike.mapper", "finetune": "onespike.mapper",
         "plan": "onespike.hdl.generate", "generate": "onespike.hdl.generate",
         "verify": "onespike.sim.verify"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
