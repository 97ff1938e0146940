"""The mapper: a trained ReLU network and calibration data → integer TTFS network (IR)."""

from onespike.mapper.frontend import load_exported, parse_exported, parse_module
from onespike.mapper.quantize import check_bits, quantize

__all__ = ["convert", "convert_exported"]


def convert(model, calib, *, act_bits=4, weight_bits=8):
    """Map a ``torch.nn.Module`` (eval mode) to a :class:`~onespike.ir.Network`.

    ``calib`` is a representative float array of shape ``(samples, *input_shape)``, fed as
    the model sees its inputs (raw, scaled or normalized).
    """
    import numpy as np

    check_bits(act_bits, weight_bits)
    calib = np.asarray(calib)
    if calib.ndim < 2 or len(calib) == 0:
        from onespike.errors import OnespikeError
        raise OnespikeError(f"calibration array has shape {calib.shape}; it needs a "
                            f"leading samples axis and at least one sample")
    input_shape, layers = parse_module(model, calib[0])
    return quantize(input_shape, layers, calib, act_bits=act_bits, weight_bits=weight_bits)


def convert_exported(path, calib, *, act_bits=4, weight_bits=8):
    """Map a ``torch.export`` program saved as ``.pt2`` (loaded without unpickling)."""
    check_bits(act_bits, weight_bits)
    input_shape, layers = parse_exported(load_exported(path))
    return quantize(input_shape, layers, calib, act_bits=act_bits, weight_bits=weight_bits)
