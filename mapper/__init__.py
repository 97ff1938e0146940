"""The mapper: a trained ReLU network and calibration data → integer TTFS network (IR)."""

from pathlib import PurePath

from onespike.mapper.frontend import load_exported, parse_exported, parse_module
from onespike.mapper.finetune import finetune
from onespike.mapper.quantize import check_bits, quantize

__all__ = ["convert", "convert_exported", "convert_onnx", "finetune", "float_logits",
           "TunedNetwork"]


def convert(model, calib, *, act_bits=None, weight_bits=8, input_bits=None, notes=None,
            recalibrate=False):
    """Map a ``torch.nn.Module`` (eval mode), or an ONNX model (``onnx.ModelProto`` or a
    ``.onnx`` path, see :func:`convert_onnx`), to a :class:`~onespike.ir.Network`.

    ``calib`` is a representative float array of shape ``(samples, *input_shape)``, fed as
    the model sees its inputs (raw, scaled or normalized); for a ReLU RNN (``nn.RNN``, an
    ``nn.RNNCell`` loop or Linear layers in a loop, :mod:`onespike.mapper.sequence`)
    ``(samples, steps, features)``, the steps fixed by it. ``act_bits`` (default 4) sets the
    hidden layers' windows, ``input_bits`` (default ``act_bits``) the input's;
    ``input_bits="auto"`` (``onespike convert``'s default) takes the fewest bits from
    ``act_bits`` up that cost the float network nothing measurable on ``calib``
    (:mod:`onespike.mapper.input_bits`), saying so in ``notes``. A
    :class:`TunedNetwork` from :func:`finetune` converts to the network it trained (its
    quantizers were fixed before training; ``calib`` is only checked for its shape).
    ``notes``, a list when given, receives what the conversion costs, one line each: the
    agreement of the integer network's classes with the float network's on ``calib``, and
    a warning naming the costliest setting when more than 1 % of them change.
    ``recalibrate`` concerns quantized ONNX models only (see :func:`convert_onnx`).
    """
    calib = _calibration(calib)
    from onespike.mapper.tuned import TunedNetwork

    if isinstance(model, TunedNetwork):
        return _tuned(model, calib, act_bits, None if input_bits == "auto" else input_bits)
    if _is_onnx(model):
        return convert_onnx(model, calib, act_bits=act_bits, weight_bits=weight_bits,
                            input_bits=input_bits, notes=notes, recalibrate=recalibrate)
    act_bits = 4 if act_bits is None else act_bits
    check_bits(act_bits, weight_bits, _pinned(input_bits))
    input_shape, layers = parse_module(model, calib[0])
    return _quantize(input_shape, layers, calib, act_bits, weight_bits, input_bits, notes)


def _pinned(input_bits):
    """``input_bits`` as :func:`check_bits` takes it (``"auto"`` is chosen later)."""
    return None if input_bits == "auto" else input_bits


def _quantize(input_shape, layers, calib, act_bits, weight_bits, input_bits, notes):
    """:func:`quantize`, after choosing ``input_bits="auto"`` from the calibration data."""
    if input_bits == "auto":
        from onespike.mapper.input_bits import choose_input_bits

        input_bits = choose_input_bits(input_shape, layers, calib, act_bits, notes)
    return quantize(input_shape, layers, calib, act_bits=act_bits, weight_bits=weight_bits,
                    input_bits=input_bits, notes=notes)


def _calibration(calib):
    import numpy as np

    from onespike.errors import OnespikeError

    calib = np.asarray(calib)
    if calib.ndim < 2 or len(calib) == 0:
        raise OnespikeError(f"calibration array has shape {calib.shape}; it needs a "
                            f"leading samples axis and at least one sample")
    return calib


def _tuned(model, calib, act_bits, input_bits):
    from onespike.errors import OnespikeError

    net = model.network()
    net.encoder.encode(calib[:1])                    # the shape check of every input
    trained = {layer.act_bits for layer in net.layers if getattr(layer, "act_bits", None)}
    asked = {"act_bits": (act_bits, trained), "input_bits": (input_bits,
                                                              {net.encoder.act_bits})}
    for name, (value, bits) in asked.items():
        if value is not None and bits != {value}:
            raise OnespikeError(f"the tuned network was trained with {name} "
                                f"{sorted(bits)[0]}, not {value}; convert it without "
                                f"{name} or fine-tune again at {value}")
    return net


def convert_exported(path, calib, *, act_bits=4, weight_bits=8, input_bits=None,
                     notes=None):
    """Map a ``torch.export`` program saved as ``.pt2`` (loaded without unpickling)."""
    check_bits(act_bits, weight_bits, _pinned(input_bits))
    _refuse_checkpoint(path)
    input_shape, layers = parse_exported(load_exported(path))
    return _quantize(input_shape, layers, calib, act_bits, weight_bits, input_bits, notes)


def _refuse_checkpoint(path):
    """Refuse a ``torch.save`` file (a pickle, or a zip with ``NAME/data.pkl`` and no
    ``archive_format``) in one line: reading it would run its pickled code."""
    import zipfile
    from pathlib import Path

    from onespike.errors import OnespikeError

    path = Path(path)
    if not path.is_file():
        return
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        pickled = any(n.count("/") == 1 and n.endswith("/data.pkl") for n in names) \
            and not any(n.endswith("/archive_format") for n in names)
    else:
        with open(path, "rb") as f:
            pickled = f.read(1) == b"\x80"          # a pickle's protocol opcode
    if pickled:
        raise OnespikeError(f"{path} is a torch.save checkpoint (pickled weights or module), "
                            f"which onespike does not unpickle; export the model instead: "
                            f"torch.export.save(torch.export.export(model.eval(), "
                            f"(example,)), 'model.pt2') or torch.onnx.export(..., "
                            f"'model.onnx')")


def convert_onnx(model, calib, *, act_bits=None, weight_bits=8, input_bits=None, notes=None,
                 recalibrate=False):
    """Map an ONNX model (``onnx.ModelProto`` or ``.onnx`` path) like a PyTorch one.

    ``calib`` holds inputs as the model takes them; for a channels-last model (``NHWC``
    input, then a ``Transpose``) the network takes them channels-first, which is said in
    ``notes`` (a list, when given, that receives such remarks one line each).

    A quantized model (QONNX ``Quant`` nodes or QCDQ, as Brevitas exports them) maps with
    its own quantizers, exactly, and the bit widths are the model's
    (:mod:`onespike.mapper.qonnx`); what cannot be held exactly is refused with the reason
    unless ``recalibrate`` asks for the mapper's own calibration of its float layers (bits
    from the model unless given), which ``notes`` then names.
    """
    from onespike.mapper.onnx_frontend import load_onnx, parse_onnx
    from onespike.mapper.qonnx import convert_quantized, is_quantized

    calib = _calibration(calib)
    loaded = load_onnx(model)
    if is_quantized(loaded):
        return convert_quantized(loaded, calib, recalibrate=recalibrate, act_bits=act_bits,
                                 weight_bits=weight_bits, input_bits=input_bits, notes=notes)
    act_bits = 4 if act_bits is None else act_bits
    check_bits(act_bits, weight_bits, _pinned(input_bits))
    chain = parse_onnx(loaded, calib[0])
    if chain.input_axes is not None and notes is not None:
        axes = ", ".join(map(str, (0,) + tuple(a + 1 for a in chain.input_axes)))
        notes.append(f"the model takes channels-last inputs; the network takes them "
                     f"channels-first: feed it x.transpose({axes})")
    return _quantize(chain.input_shape, chain.layers, chain.network_inputs(calib), act_bits,
                     weight_bits, input_bits, notes)


def float_logits(model, x):
    """The float network's logits on ``x`` (batch first, as the integer network takes its
    inputs): ``model`` (an ``nn.Module``, a ``.pt2`` or ``.onnx`` path) read by the front
    end ``convert`` uses, its layers in float64 with batch norms folded, as the model
    computes them. A quantized ONNX model is refused: its float network is not what it
    was trained to compute."""
    from onespike.errors import OnespikeError
    from onespike.mapper.quantize import float_forward

    x = _calibration(x)
    if _is_onnx(model):
        from onespike.mapper.onnx_frontend import load_onnx, parse_onnx
        from onespike.mapper.qonnx import is_quantized

        loaded = load_onnx(model)
        if is_quantized(loaded):
            raise OnespikeError("the model is quantized (QONNX/QCDQ): its accuracy is its "
                                "own quantized network's, not a float one; give it as a "
                                "number (--float-accuracy)")
        layers = parse_onnx(loaded, x[0]).layers
    elif isinstance(model, (str, PurePath)):
        _refuse_checkpoint(model)
        layers = parse_exported(load_exported(model))[1]
    else:
        layers = parse_module(model, x[0])[1]
    return float_forward(layers, x)


def _is_onnx(model):
    from pathlib import PurePath

    if isinstance(model, (str, PurePath)):
        return str(model).lower().endswith(".onnx")
    kind = type(model)
    return kind.__name__ == "ModelProto" and kind.__module__.startswith("onnx")


def __getattr__(name):
    if name == "TunedNetwork":     # imports torch: only when asked for
        from onespike.mapper.tuned import TunedNetwork
        return TunedNetwork
    raise AttributeError(name)
