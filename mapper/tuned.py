"""The converted integer network as a trainable torch module (see
:mod:`onespike.mapper.finetune` for how it is trained and why its scales stay fixed)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from onespike.errors import OnespikeError
from onespike.ir import MaxPool, Network

__all__ = ["TunedNetwork"]


class TunedNetwork(torch.nn.Module):
    """An integer :class:`~onespike.ir.Network` as a trainable torch module.

    ``forward(x)`` takes float inputs as the original model did and returns the integer
    logits (float64 tensor) of ``closed_form``; :meth:`network` rounds the trained
    parameters into a new ``Network``. ``history`` holds one dict per epoch.
    """

    def __init__(self, net: Network, weight_bits: int):
        super().__init__()
        self.net, self.weight_bits = net, weight_bits
        self.qmax = (1 << (weight_bits - 1)) - 1
        self.synaptic = [layer for layer in net.layers if not isinstance(layer, MaxPool)]
        self.theta = torch.nn.ParameterList()       # weights / qmax
        self.beta = torch.nn.ParameterList()        # biases / (R, or qmax for the readout)
        for layer in self.synaptic:
            if np.abs(layer.weight).max(initial=0) > self.qmax:
                raise OnespikeError(f"the network has weights beyond {weight_bits} bits; "
                                    f"fine-tune it with weight_bits of at least "
                                    f"{int(np.abs(layer.weight).max()).bit_length() + 1}")
            self.theta.append(torch.nn.Parameter(torch.tensor(layer.weight / self.qmax)))
            self.beta.append(torch.nn.Parameter(torch.tensor(layer.bias / self._bias_unit(layer))))
        self.history = []

    def _bias_unit(self, layer):
        if layer.is_readout:
            return np.float64(self.qmax)
        ramp = layer.ramp.astype(np.float64)
        return ramp if layer.bias.ndim == 1 else layer.per_channel(ramp)

    def _weight(self, k):
        w = self.theta[k] * self.qmax
        q = w.detach().round().clamp(-self.qmax, self.qmax)
        return w + (q - w).detach()

    def _bias(self, k):
        b = self.beta[k] * torch.as_tensor(self._bias_unit(self.synaptic[k]))
        return b + (b.detach().round() - b).detach()

    def encode(self, x) -> torch.Tensor:
        """The encoder's integer activations of float inputs (float64 tensor)."""
        return torch.as_tensor(self.net.encoder.encode(x), dtype=torch.float64)

    def integer_forward(self, a0: torch.Tensor):
        """``(logits, hidden)``: the integer logits of encoded inputs ``a0`` and, per hidden
        layer, its activations as a fraction of the window (straight-through)."""
        a, hidden, k = a0, [], 0
        for layer in self.net.layers:
            if isinstance(layer, MaxPool):
                a = F.max_pool2d(a, layer.kernel, layer.stride, layer.padding)
                continue
            if layer.pooling:
                a = F.avg_pool2d(a, layer.pool, divisor_override=1)      # sum pooling
            w, b = self._weight(k), self._bias(k)
            k += 1
            if layer.kind == "dense":
                y = a.flatten(1) @ w.T + b
            else:
                y = F.conv2d(a, w, stride=layer.stride, padding=layer.padding) \
                    + (b[:, None, None] if b.ndim == 1 else b)
            if layer.is_readout:
                return y.flatten(1), hidden
            ramp = torch.tensor(layer.per_channel(layer.ramp))
            exact = torch.div(y.detach().round().long(), ramp, rounding_mode="floor")
            soft = (y / ramp).clamp(0, layer.levels + 1)
            a = soft + (exact.clamp(0, layer.levels).to(y.dtype) - soft).detach()
            hidden.append(a / layer.levels)
        raise AssertionError("a Network ends with its readout")

    def forward(self, x):
        return self.integer_forward(self.encode(x))[0]

    def network(self) -> Network:
        """The trained integer network (the one ``forward`` evaluates)."""
        layers, k = [], 0
        for layer in self.net.layers:
            if not isinstance(layer, MaxPool):
                with torch.no_grad():
                    weight = self._weight(k).round().long().numpy()
                    bias = self._bias(k).round().long().numpy()
                layer = replace(layer, weight=weight, bias=bias)
                k += 1
            layers.append(layer)
        return Network(self.net.encoder, tuple(layers))
