"""The integer TTFS network: what the mapper produces and everything else consumes.

A :class:`Network` is an :class:`Encoder` followed by layers (:class:`Dense`, :class:`Conv`,
:class:`MaxPool`, :class:`Recurrent`). Every spiking layer ``n`` has ``levels = 2**act_bits - 1`` (``A_n`` in
``DESIGN.md``) and fires in its own window; the last layer is the readout (``ramp is None``),
whose integer membrane after integration is the logit vector.

All objects are frozen and validated on construction; their arrays are read-only. Register
widths are derived from the integer parameters (:meth:`Network.widths`), never stored
independently: a file whose header disagrees with them is refused.

File format (``.npz``, readable with ``numpy.load(..., allow_pickle=False)``): an array
``header`` holding UTF-8 JSON (see :func:`save`), and integer/float arrays named
``encoder.scale``, ``encoder.offset``, ``layers.<i>.weight``, ``layers.<i>.bias``,
``layers.<i>.scale`` (float value of one activation step, or of one logit unit, per output
channel) and ``layers.<i>.ramp`` (absent for the readout); max-pooling layers have none;
recurrent layers add ``layers.<i>.recurrent`` (the state-to-state weights).

Sequences (format version 2): a network whose encoder has ``steps = T`` takes inputs of shape
``(T, *shape)`` per sample. Every layer up to the last :class:`Recurrent` runs once per
sequence step (a *per-step* layer); the layers after it see the last step's state only.
Version 1 files (no sequences) still load.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from .errors import OnespikeError

__all__ = ["Encoder", "Dense", "Conv", "MaxPool", "Recurrent", "Network", "LayerWidths", "NO_SPIKE",
           "FORMAT", "FORMAT_VERSION", "save", "load", "signed_bits", "signal_shape"]

FORMAT = "onespike.net"
FORMAT_VERSION = 2
#: Versions :func:`load` reads (1: no sequences, no recurrent layers).
READABLE_VERSIONS = (1, 2)
#: Spike time recorded for a neuron that does not spike (activation 0).
NO_SPIKE = -1


def signed_bits(bound: int) -> int:
    """Bits of a two's complement register that holds every value in ``[-bound, bound]``."""
    return int(bound).bit_length() + 1


def _frozen(array, dtype, name, ndim=None):
    array = np.array(array, dtype=dtype)  # a private copy
    if ndim is not None and array.ndim != ndim:
        raise OnespikeError(f"{name} must have {ndim} dimensions, not shape {array.shape}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise OnespikeError(f"{name} contains NaN or infinite values")
    array.flags.writeable = False
    return array


def _shape(value, name):
    shape = tuple(int(v) for v in value)
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise OnespikeError(f"{name} must be (features,) or (channels, height, width) with "
                            f"positive sizes, not {value!r}")
    return shape


def _check_act_bits(act_bits, name):
    if isinstance(act_bits, bool) or not isinstance(act_bits, (int, np.integer)) \
            or not 1 <= act_bits <= 8:
        raise OnespikeError(f"{name} act_bits must be an integer from 1 to 8, not {act_bits!r}")
    return int(act_bits)


def _pair(value, name, minimum=1):
    """``(height, width)`` of a geometry parameter given as one integer or two."""
    values = tuple(value) if isinstance(value, (tuple, list, np.ndarray)) else (value, value)
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                               or v < minimum for v in values):
        raise OnespikeError(f"{name} must be an integer ≥ {minimum} or a (height, width) pair "
                            f"of them, not {value!r}")
    return tuple(int(v) for v in values)


def signal_shape(shape):
    """``(channels, length)`` when ``shape`` is a 1-D signal as the image
    ``(channels, 1, length)``, else None."""
    shape = tuple(shape)
    return (shape[0], shape[2]) if len(shape) == 3 and shape[1] == 1 else None


def _window_out(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def _map_out(shape, kernel, stride, padding):
    """Output ``(height, width)`` of a window of ``kernel`` sliding over ``shape[1:]``."""
    return tuple(_window_out(n, k, s, p)
                 for n, k, s, p in zip(shape[1:], kernel, stride, padding))


@dataclass(frozen=True)
class Encoder:
    """Float input → integer activations ``a0 = clip(floor((x - offset)/scale + 1/2), 0, A0)``.

    ``scale`` and ``offset`` hold one value per channel (images), or one value per feature
    or a single value (vectors). The offset is folded into the first layer's bias by the
    mapper; the hardware only ever sees the integers. A 1-D signal ``(channels, length)`` is
    an image of height 1: ``shape`` is ``(channels, 1, length)`` and :meth:`encode` takes
    either form.

    ``steps``: a sequence network's length ``T`` (each sample is ``T`` frames of ``shape``,
    one per sequence step), or None for a network on single samples.
    """
    shape: tuple
    act_bits: int
    scale: np.ndarray
    offset: np.ndarray
    steps: Union[int, None] = None

    def __post_init__(self):
        object.__setattr__(self, "shape", _shape(self.shape, "encoder shape"))
        if self.steps is not None:
            if isinstance(self.steps, bool) or not isinstance(self.steps, (int, np.integer)) \
                    or self.steps < 1:
                raise OnespikeError(f"sequence steps must be a positive integer, not "
                                    f"{self.steps!r}")
            object.__setattr__(self, "steps", int(self.steps))
        object.__setattr__(self, "act_bits", _check_act_bits(self.act_bits, "encoder"))
        allowed = (self.shape[0],) if len(self.shape) == 3 else (1, self.shape[0])
        for name in ("scale", "offset"):
            arr = _frozen(getattr(self, name), np.float64, f"encoder {name}", ndim=1)
            if arr.shape[0] not in allowed:
                raise OnespikeError(f"encoder {name} must have "
                                    f"{' or '.join(map(str, allowed))} value(s), "
                                    f"not {arr.shape[0]}")
            object.__setattr__(self, name, arr)
        if np.any(self.scale <= 0):
            raise OnespikeError("encoder scale must be positive")

    @property
    def levels(self) -> int:
        return (1 << self.act_bits) - 1

    @property
    def out_shape(self) -> tuple:
        return self.shape

    @property
    def sample_shape(self) -> tuple:
        """One sample's input: ``(steps, *shape)`` for a sequence, else ``shape``."""
        return self.shape if self.steps is None else (self.steps,) + self.shape

    @property
    def signal_shape(self):
        """``(channels, length)`` when the input is a 1-D signal (height 1), else None."""
        return signal_shape(self.shape)

    def encode(self, x) -> np.ndarray:
        """Integer activations (int64, shape ``(batch, *sample_shape)``) of float inputs."""
        x = np.asarray(x, dtype=np.float64)
        lead = 1 if self.steps is None else 2
        expect = self.sample_shape
        if self.signal_shape and x.shape[1:] == expect[:lead - 1] + self.signal_shape:
            x = x.reshape(x.shape[:lead] + self.shape)
        if x.shape[1:] != expect:
            signal = expect[:lead - 1] + self.signal_shape if self.signal_shape else None
            raise OnespikeError(f"inputs have shape {x.shape[1:]} per sample, the network "
                                f"expects {expect}"
                                + (f" or {signal}" if signal else "")
                                + (" (steps, features...)" if self.steps else ""))
        if not np.all(np.isfinite(x)):
            raise OnespikeError("inputs contain NaN or infinite values")
        bshape = (1,) * (lead - 1) + ((1, -1, 1, 1) if len(self.shape) == 3 else (1, -1))
        q = np.floor((x - self.offset.reshape(bshape)) / self.scale.reshape(bshape) + 0.5)
        return np.clip(q, 0, self.levels).astype(np.int64)


@dataclass(frozen=True)
class _Synaptic:
    """Fields shared by the weighted layers (the ones with neurons)."""
    in_shape: tuple
    weight: np.ndarray
    bias: np.ndarray
    ramp: Union[np.ndarray, None]
    act_bits: Union[int, None]
    scale: np.ndarray
    pool: tuple = (1, 1)

    def _validate_common(self, weight_ndim):
        object.__setattr__(self, "in_shape", _shape(self.in_shape, f"{self.kind} in_shape"))
        object.__setattr__(self, "pool", _pair(self.pool, "sum-pool factor"))
        if self.pooling and len(self.in_shape) != 3:
            raise OnespikeError("sum pooling needs a (channels, height, width) input")
        if self.pooling and any(n < k for n, k in zip(self.in_shape[1:], self.pool)):
            raise OnespikeError(f"sum-pool factor {self.pool} exceeds the input map "
                                f"{self.in_shape}")
        object.__setattr__(self, "weight",
                           _frozen(self.weight, np.int64, f"{self.kind} weight", weight_ndim))
        object.__setattr__(self, "bias", _frozen(self.bias, np.int64, f"{self.kind} bias"))
        outputs = self.weight.shape[0]
        scale = _frozen(np.broadcast_to(self.scale, (outputs,)), np.float64,
                        f"{self.kind} scale", ndim=1)
        if np.any(scale <= 0):
            raise OnespikeError(f"{self.kind} scale must be positive")
        object.__setattr__(self, "scale", scale)
        if (self.ramp is None) != (self.act_bits is None):
            raise OnespikeError("a readout layer has neither ramp nor act_bits; a hidden "
                                "layer has both")
        if self.ramp is not None:
            ramp = _frozen(self.ramp, np.int64, f"{self.kind} ramp", ndim=1)
            if ramp.shape != (outputs,):
                raise OnespikeError(f"{self.kind} ramp has {ramp.shape[0]} values for "
                                    f"{outputs} output channels")
            if np.any(ramp < 1):
                raise OnespikeError(f"{self.kind} ramp R must be a positive integer")
            object.__setattr__(self, "ramp", ramp)
            object.__setattr__(self, "act_bits", _check_act_bits(self.act_bits, self.kind))

    @property
    def is_readout(self) -> bool:
        return self.ramp is None

    @property
    def levels(self) -> int:
        """``A_n``: the largest activation (0 for the readout, which does not spike)."""
        return 0 if self.is_readout else (1 << self.act_bits) - 1

    @property
    def pooling(self) -> bool:
        """Whether the input is sum-pooled (by ``pool = (height, width)``) first."""
        return self.pool != (1, 1)

    @property
    def pooled_shape(self) -> tuple:
        """Shape of the input after sum pooling (the shape the weights see)."""
        if not self.pooling:
            return self.in_shape
        c, h, w = self.in_shape
        return (c, h // self.pool[0], w // self.pool[1])

    @property
    def abs_weight_sums(self) -> np.ndarray:
        """``Σ_j |w_ij|`` per output channel, counting each pooled input ``ph·pw`` times."""
        return np.abs(self.weight).reshape(self.weight.shape[0], -1).sum(axis=1) \
            * self.pool[0] * self.pool[1]

    def per_channel(self, values):
        """Per-output-channel ``values`` shaped to broadcast over the layer's output map
        (a column per channel for a convolution)."""
        return values[:, None, None] if self.kind == "conv" else values

    @property
    def abs_bias_max(self) -> np.ndarray:
        return np.abs(self.bias).reshape(self.weight.shape[0], -1).max(axis=1)


@dataclass(frozen=True)
class Dense(_Synaptic):
    """Fully connected layer on the (flattened, optionally sum-pooled) incoming spike map.

    ``weight`` is ``(outputs, inputs)`` with inputs in C order of :attr:`pooled_shape`
    (torch's ``Flatten`` order); ``bias`` is ``(outputs,)``.
    """
    kind = "dense"

    def __post_init__(self):
        self._validate_common(weight_ndim=2)
        inputs = int(np.prod(self.pooled_shape))
        if self.weight.shape[1] != inputs:
            raise OnespikeError(f"dense weight has {self.weight.shape[1]} inputs, the incoming "
                                f"map {self.pooled_shape} has {inputs}")
        if self.bias.shape != (self.weight.shape[0],):
            raise OnespikeError(f"dense bias has shape {self.bias.shape}, expected "
                                f"({self.weight.shape[0]},)")

    @property
    def out_shape(self) -> tuple:
        return (self.weight.shape[0],)


@dataclass(frozen=True)
class Conv(_Synaptic):
    """2-D convolution (zero padding) on the optionally sum-pooled input.

    ``weight`` is ``(out_channels, in_channels, kh, kw)``; ``bias`` is ``(out_channels,)`` or,
    where the input offset meets zero padding, position-dependent ``(out_channels, h, w)``.
    ``stride`` and ``padding`` are ``(height, width)`` pairs (an integer means both). A 1-D
    convolution is the same layer on a map of height 1 with a kernel of height 1.
    """
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    kind = "conv"

    def __post_init__(self):
        self._validate_common(weight_ndim=4)
        object.__setattr__(self, "stride", _pair(self.stride, "conv stride"))
        object.__setattr__(self, "padding", _pair(self.padding, "conv padding", minimum=0))
        if len(self.in_shape) != 3:
            raise OnespikeError("conv input must be (channels, height, width)")
        o, c, kh, kw = self.weight.shape
        if c != self.pooled_shape[0]:
            raise OnespikeError(f"conv weight has {c} input channels, the input has "
                                f"{self.pooled_shape[0]}")
        if any(p >= k for p, k in zip(self.padding, self.kernel)):
            raise OnespikeError(f"conv padding {self.padding} must be smaller than the kernel "
                                f"{self.kernel} on each axis")
        if min(self.out_shape[1:]) < 1:
            raise OnespikeError(f"conv kernel {self.kernel} does not fit the input "
                                f"{self.pooled_shape}")
        if self.bias.shape not in ((o,), self.out_shape):
            raise OnespikeError(f"conv bias has shape {self.bias.shape}, expected ({o},) or "
                                f"{self.out_shape}")

    @property
    def kernel(self) -> tuple:
        """``(kh, kw)``."""
        return tuple(self.weight.shape[2:])

    @property
    def out_shape(self) -> tuple:
        return (self.weight.shape[0],
                *_map_out(self.pooled_shape, self.kernel, self.stride, self.padding))


@dataclass(frozen=True)
class MaxPool:
    """Max pooling in the spike domain: a pooled neuron fires with its earliest input.

    ``kernel``, ``stride`` and ``padding`` are ``(height, width)`` pairs (an integer means
    both)."""
    in_shape: tuple
    kernel: tuple
    stride: tuple
    padding: tuple = (0, 0)
    kind = "maxpool"
    is_readout = False

    def __post_init__(self):
        object.__setattr__(self, "in_shape", _shape(self.in_shape, "maxpool in_shape"))
        if len(self.in_shape) != 3:
            raise OnespikeError("maxpool input must be (channels, height, width)")
        object.__setattr__(self, "kernel", _pair(self.kernel, "maxpool kernel"))
        object.__setattr__(self, "stride", _pair(self.stride, "maxpool stride"))
        object.__setattr__(self, "padding", _pair(self.padding, "maxpool padding", minimum=0))
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel)):
            raise OnespikeError(f"maxpool padding {self.padding} must be at most half the "
                                f"kernel {self.kernel} on each axis")
        if min(self.out_shape[1:]) < 1:
            raise OnespikeError(f"maxpool kernel {self.kernel} does not fit {self.in_shape}")

    @property
    def out_shape(self) -> tuple:
        return (self.in_shape[0],
                *_map_out(self.in_shape, self.kernel, self.stride, self.padding))


@dataclass(frozen=True)
class Recurrent(_Synaptic):
    """ReLU recurrent layer over the steps of a sequence (always hidden, never the readout):

        h_t = clip(floor((W_x·x_t + W_h·h_{t−1} + b) / R), 0, A),   h_{−1} = 0

    ``weight`` ``W_x`` is ``(outputs, inputs)`` on the per-step input in C order (flattened
    as :class:`Dense` does),
    ``recurrent`` ``W_h`` is ``(outputs, outputs)``, ``bias`` ``(outputs,)``. Its spikes of
    step ``t`` feed the next layer (step ``t``) and, as ``h_t``, the layer itself at step
    ``t + 1``: one integration window takes the spikes of ``x_{t+1}`` and of ``h_t``.
    """
    recurrent: np.ndarray = None
    kind = "recurrent"

    def __post_init__(self):
        self._validate_common(weight_ndim=2)
        if self.is_readout:
            raise OnespikeError("a recurrent layer cannot be the readout; add a Linear "
                                "readout after it")
        if self.pooling:
            raise OnespikeError("a recurrent layer takes its input without sum pooling")
        outputs, inputs = self.weight.shape
        if inputs != int(np.prod(self.in_shape)):
            raise OnespikeError(f"recurrent input weight has {inputs} inputs, the incoming "
                                f"map {self.in_shape} has {int(np.prod(self.in_shape))}")
        if self.recurrent is None:
            raise OnespikeError("a recurrent layer needs its recurrent (state) weights")
        recurrent = _frozen(self.recurrent, np.int64, "recurrent state weight", 2)
        if recurrent.shape != (outputs, outputs):
            raise OnespikeError(f"recurrent state weight has shape {recurrent.shape}, expected "
                                f"({outputs}, {outputs})")
        object.__setattr__(self, "recurrent", recurrent)
        if self.bias.shape != (outputs,):
            raise OnespikeError(f"recurrent bias has shape {self.bias.shape}, expected "
                                f"({outputs},)")

    @property
    def out_shape(self) -> tuple:
        return (self.weight.shape[0],)

    @property
    def abs_recurrent_sums(self) -> np.ndarray:
        """``Σ_k |W_h[i, k]|`` per output."""
        return np.abs(self.recurrent).sum(axis=1)


Layer = Union[Dense, Conv, MaxPool, Recurrent]


@dataclass(frozen=True)
class LayerWidths:
    """Register bounds of one synaptic layer, derived from its integer parameters.

    ``current_bound`` ≥ every ``|I|``; ``membrane_bound`` ≥ every ``|V|`` including the firing
    ramp ``V + k·R``; ``*_bits`` are the two's complement widths that hold them.
    """
    current_bound: int
    membrane_bound: int

    @property
    def current_bits(self) -> int:
        return signed_bits(self.current_bound)

    @property
    def membrane_bits(self) -> int:
        return signed_bits(self.membrane_bound)


@dataclass(frozen=True)
class Network:
    """An encoder and a chain of layers; the last is the readout."""
    encoder: Encoder
    layers: tuple = field(default_factory=tuple)

    def __post_init__(self):
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if not isinstance(self.encoder, Encoder):
            raise OnespikeError("network needs an Encoder")
        if not layers or not isinstance(layers[-1], (Dense, Conv)) or not layers[-1].is_readout:
            raise OnespikeError("the last layer must be a Dense or Conv readout (no ramp)")
        recurrent = any(isinstance(layer, Recurrent) for layer in layers)
        if recurrent != (self.encoder.steps is not None):
            raise OnespikeError("a network with recurrent layers takes sequences (encoder "
                                "steps) and a sequence network needs a recurrent layer")
        shape = self.encoder.shape
        for i, layer in enumerate(layers):
            if not isinstance(layer, (Dense, Conv, MaxPool, Recurrent)):
                raise OnespikeError(f"layer {i} is a {type(layer).__name__}, not a layer")
            if layer.is_readout and i != len(layers) - 1:
                raise OnespikeError(f"layer {i} is a readout but is not the last layer")
            if layer.in_shape != shape:
                raise OnespikeError(f"layer {i} ({layer.kind}) expects input {layer.in_shape}, "
                                    f"the previous stage gives {shape}")
            shape = layer.out_shape

    # -- sequences ----------------------------------------------------------------------
    @property
    def steps(self):
        """Sequence length ``T``, or None for a network on single samples."""
        return self.encoder.steps

    @property
    def per_step_layers(self) -> int:
        """How many layers, from the first, run once per sequence step: all up to the last
        recurrent one (0 for a network without recurrence)."""
        return max((i + 1 for i, layer in enumerate(self.layers)
                    if isinstance(layer, Recurrent)), default=0)

    def per_step(self, index: int) -> bool:
        """Whether the spike map feeding ``layers[index]`` comes once per sequence step
        (``index = len(layers)``: the readout's logits, never)."""
        return index < self.per_step_layers

    def integration_levels(self, index: int) -> int:
        """Steps of ``layers[index]``'s integration window: ``A`` of its input, or for a
        recurrent layer ``max(A_x, A_h)`` (both inputs, aligned at the window's end)."""
        levels = self.in_levels(index)
        layer = self.layers[index]
        return max(levels, layer.levels) if isinstance(layer, Recurrent) else levels

    # -- timing -------------------------------------------------------------------------
    def in_levels(self, index: int) -> int:
        """``A`` of the spike map that feeds ``layers[index]``."""
        levels = self.encoder.levels
        for layer in self.layers[:index]:
            if not isinstance(layer, MaxPool):
                levels = layer.levels
        return levels

    def window_starts(self) -> tuple:
        """``t_n`` of the spike map feeding each layer: it fires in ``[t, t + A]``.

        Entry ``i`` belongs to the input of ``layers[i]``; a max-pool passes spikes on in the
        same step, so its output shares its input's window.
        """
        starts, t, levels = [], 0, self.encoder.levels
        for layer in self.layers:
            starts.append(t)
            if not isinstance(layer, MaxPool):
                t, levels = t + levels, layer.levels
        return tuple(starts)

    @property
    def latency_steps(self) -> int:
        """Time steps from the first input spike to valid logits: ``Σ A_n`` below the readout."""
        return self.window_starts()[-1] + self.in_levels(len(self.layers) - 1)

    @property
    def num_classes(self) -> int:
        return int(np.prod(self.layers[-1].out_shape))

    def widths(self) -> tuple:
        """:class:`LayerWidths` per layer (``None`` for max-pooling)."""
        result = []
        for i, layer in enumerate(self.layers):
            if isinstance(layer, MaxPool):
                result.append(None)
                continue
            ramp = 0 if layer.is_readout else layer.ramp
            sums = layer.abs_weight_sums
            membrane = layer.abs_bias_max + self.in_levels(i) * sums + layer.levels * ramp
            if isinstance(layer, Recurrent):
                membrane = membrane + layer.levels * layer.abs_recurrent_sums
                sums = sums + layer.abs_recurrent_sums
            result.append(LayerWidths(int(sums.max()), int(membrane.max())))
        return tuple(result)

    # -- serialization ------------------------------------------------------------------
    def header(self) -> dict:
        """The JSON header of the ``.npz`` file (all non-array facts, widths included)."""
        layers = []
        for layer, widths in zip(self.layers, self.widths()):
            entry = {"kind": layer.kind, "in_shape": list(layer.in_shape),
                     "out_shape": list(layer.out_shape)}
            if isinstance(layer, MaxPool):
                entry.update(kernel=list(layer.kernel), stride=list(layer.stride),
                             padding=list(layer.padding))
            else:
                entry.update(pool=list(layer.pool), act_bits=layer.act_bits,
                             readout=layer.is_readout, current_bits=widths.current_bits,
                             membrane_bits=widths.membrane_bits)
                if isinstance(layer, Conv):
                    entry.update(stride=list(layer.stride), padding=list(layer.padding))
            layers.append(entry)
        encoder = {"shape": list(self.encoder.shape), "act_bits": self.encoder.act_bits}
        if self.steps is not None:
            encoder["steps"] = self.steps
        return {"format": FORMAT, "version": FORMAT_VERSION, "encoder": encoder,
                "layers": layers, "latency_steps": self.latency_steps,
                "num_classes": self.num_classes}

    def arrays(self) -> dict:
        arrays = {"encoder.scale": self.encoder.scale, "encoder.offset": self.encoder.offset}
        for i, layer in enumerate(self.layers):
            if isinstance(layer, MaxPool):
                continue
            arrays[f"layers.{i}.weight"] = layer.weight
            arrays[f"layers.{i}.bias"] = layer.bias
            arrays[f"layers.{i}.scale"] = layer.scale
            if layer.ramp is not None:
                arrays[f"layers.{i}.ramp"] = layer.ramp
            if isinstance(layer, Recurrent):
                arrays[f"layers.{i}.recurrent"] = layer.recurrent
        return arrays


def save(net: Network, path) -> Path:
    """Write ``net`` to ``path`` atomically (a failed write leaves no file behind).

    Header keys: ``format`` (``"onespike.net"``), ``version``, ``encoder`` (``shape``,
    ``act_bits``, and ``steps`` for a sequence network), ``layers`` (per layer ``kind`` ∈
    dense/conv/maxpool/recurrent, ``in_shape``,
    ``out_shape``; synaptic layers add ``pool``, ``act_bits`` (null for the readout),
    ``readout``,
    ``current_bits``, ``membrane_bits``; conv adds ``stride``, ``padding``; maxpool
    ``kernel``, ``stride``, ``padding``; each geometry value a ``[height, width]`` pair, files
    of older versions hold one integer for both), ``latency_steps``, ``num_classes``.
    """
    path = Path(path)
    header = np.frombuffer(json.dumps(net.header(), indent=1).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, header=header, **net.arrays())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def _layer_from(entry, arrays, i):
    kind = entry.get("kind")
    if kind == "maxpool":
        return MaxPool(in_shape=entry["in_shape"], kernel=entry["kernel"],
                       stride=entry["stride"], padding=entry["padding"])
    if kind not in ("dense", "conv", "recurrent"):
        raise OnespikeError(f"layer {i} has unknown kind {kind!r}")
    common = dict(in_shape=entry["in_shape"], weight=arrays[f"layers.{i}.weight"],
                  bias=arrays[f"layers.{i}.bias"], ramp=arrays.get(f"layers.{i}.ramp"),
                  act_bits=entry["act_bits"], scale=arrays[f"layers.{i}.scale"],
                  pool=entry["pool"])
    if kind == "dense":
        return Dense(**common)
    if kind == "recurrent":
        return Recurrent(**common, recurrent=arrays[f"layers.{i}.recurrent"])
    return Conv(**common, stride=entry["stride"], padding=entry["padding"])


def load(path) -> Network:
    """Read a network written by :func:`save`, validating everything it holds."""
    path = Path(path)
    if not path.is_file():
        raise OnespikeError(f"network file {path} does not exist; make one with "
                            f"`onespike convert`")
    try:
        with open(path, "rb") as f:
            npz = np.load(f, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an .npz archive")
            with npz:
                arrays = {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as e:
        raise OnespikeError(f"{path} is not a readable .npz file (truncated or another "
                            f"format: {e}); regenerate it with `onespike convert`") from None
    if "header" not in arrays:
        raise OnespikeError(f"{path} is an .npz file but not a onespike network (no header)")
    try:
        header = json.loads(arrays.pop("header").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise OnespikeError(f"{path} has a corrupt header") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise OnespikeError(f"{path} is not a onespike network file")
    if header.get("version") not in READABLE_VERSIONS:
        raise OnespikeError(f"{path} has format version {header.get('version')}, this "
                            f"onespike reads versions {', '.join(map(str, READABLE_VERSIONS))}; "
                            f"convert the model again")
    try:
        encoder = Encoder(shape=header["encoder"]["shape"],
                          act_bits=header["encoder"]["act_bits"],
                          scale=arrays["encoder.scale"], offset=arrays["encoder.offset"],
                          steps=header["encoder"].get("steps"))
        net = Network(encoder, tuple(_layer_from(entry, arrays, i)
                                     for i, entry in enumerate(header["layers"])))
    except (KeyError, TypeError) as e:
        raise OnespikeError(f"{path} is incomplete: missing {e}") from None
    stored = header
    derived = net.header()
    for i, (got, want) in enumerate(zip(stored["layers"], derived["layers"])):
        for key in ("current_bits", "membrane_bits", "out_shape"):
            if got.get(key) != want.get(key):
                raise OnespikeError(f"{path}: layer {i} {key} is {got.get(key)} in the header "
                                    f"but {want.get(key)} from its parameters (inconsistent "
                                    f"widths); regenerate the file")
    return net
