"""The accelerator's plan: the user's options checked and resolved once (lanes and firing
per layer, membranes, DSP use) and every part's sizes, as plain data.

:class:`AcceleratorPlan` is what the TTFS accelerator is built from: its parts are the
cores' sizes (:class:`~onespike.hdl.core.NeuronSizes` and the like), which answer
everything the cycle model, the manifest and the board planner ask, and no Amaranth
component is made. :class:`~onespike.hdl.top.Accelerator` is the same plan with components
for parts. The lane and firing choices (:func:`spend_lanes`, :func:`balance_lanes`,
:func:`choose_firing`) read plans too.
"""

import numpy as np

from onespike.errors import OnespikeError
from onespike.hdl.conv import ConvCore, ConvSizes
from onespike.hdl.core import NeuronSizes
from onespike.hdl.cycles import cycle_estimate, stage_layer
from onespike.hdl.dense import DenseCore, DenseSizes
from onespike.hdl.encoder import EncoderSizes, SpikeEncoder, flag
from onespike.hdl.firing import FIRINGS, sorting_pays
from onespike.hdl.mac import (ActivationMaxPool, ActivationPoolSizes, ActivationSource,
                              MacCore, MacSizes, SourceSizes)
from onespike.hdl.maxpool import MaxPoolCore, MaxPoolSizes
from onespike.hdl.recurrent import RecurrentCore, RecurrentSizes
from onespike.ir import Conv, MaxPool, Network, Recurrent

__all__ = ["AcceleratorPlan", "DensePlan", "PipelinePlan", "SIZES", "COMPONENTS",
           "DENSE_SIZES", "DENSE_COMPONENTS", "FORMS", "MEMBRANES", "SPIKE_SHARE", "SORT_GAIN", "balance_lanes", "choose_firing", "encoder_spike_cycles",
           "firing_per_layer", "form_name", "layer_lanes", "membrane_forms", "more_lanes",
           "neuron_core", "spend_lanes"]

#: A plan's parts by kind: their sizes alone ...
SIZES = {"encoder": EncoderSizes, "dense": DenseSizes, "conv": ConvSizes,
         "maxpool": MaxPoolSizes, "recurrent": RecurrentSizes}
#: ... or the components (:class:`~onespike.hdl.top.Accelerator`'s).
COMPONENTS = {"encoder": SpikeEncoder, "dense": DenseCore, "conv": ConvCore,
              "maxpool": MaxPoolCore, "recurrent": RecurrentCore}
#: The dense coding's parts: sizes, ...
DENSE_SIZES = {"encoder": SourceSizes, "mac": MacSizes, "maxpool": ActivationPoolSizes}
#: ... or components (:class:`~onespike.hdl.dense_top.DenseAccelerator`'s).
DENSE_COMPONENTS = {"encoder": ActivationSource, "mac": MacCore, "maxpool": ActivationMaxPool}


def layer_lanes(net: Network, lanes) -> list:
    """Lanes per layer from one ``--lanes P`` (capped at each layer's channel count) or a
    list; max-pooling layers have none (1)."""
    sizes = [1 if isinstance(layer, MaxPool) else layer.weight.shape[0]
             for layer in net.layers]
    if isinstance(lanes, int) and not isinstance(lanes, bool):
        if lanes < 1:
            raise OnespikeError(f"lane count must be a positive integer, not {lanes}")
        if lanes > max(sizes):
            raise OnespikeError(f"lane count {lanes} is larger than the largest layer "
                                f"({max(sizes)} neurons); use at most {max(sizes)}")
        return [min(lanes, n) for n in sizes]
    lanes = list(lanes)
    if len(lanes) != len(sizes):
        raise OnespikeError(f"{len(lanes)} lane counts for {len(sizes)} layers")
    for i, (p, n) in enumerate(zip(lanes, sizes)):
        if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= n:
            raise OnespikeError(f"layer {i}: lane count must be 1..{n}, not {p!r}")
    return lanes


SPIKE_SHARE = 0.25
"""The share of each stream's neurons that :func:`choose_firing` assumes spike."""
SORT_GAIN = 0.25
"""The least share of the cycles per sample that sorted firing must save to be chosen."""


def encoder_spike_cycles(consumer) -> int:
    """The encoder's cycles per spike before ``consumer``: 2 (its list loop registered, a
    shorter clock path) when the consumer takes at least two cycles for every spike, so
    that the second cycle costs nothing, else 1."""
    per_spike = getattr(consumer, "spike_cycles", None)      # None: a max-pooling core
    return 2 if per_spike is not None and int(np.min(per_spike)) >= 2 else 1


def neuron_core(net: Network, i: int, *, parts=None, widths, lanes, use_dsp=True,
                sorted_firing=False, single_port=False, banks=2):
    """The neuron core of weighted layer ``i`` of ``net`` (a recurrent core for a recurrent
    layer, told the sequence's steps and whether every step goes on), at register
    ``widths``: its sizes (:data:`SIZES`), or the component with ``parts=COMPONENTS``."""
    layer, parts = net.layers[i], parts or SIZES
    if isinstance(layer, Recurrent):
        return parts["recurrent"](layer, in_levels=net.in_levels(i), widths=widths,
                                  lanes=lanes, steps=net.steps, all_steps=net.per_step(i + 1),
                                  use_dsp=use_dsp, sorted_firing=sorted_firing)
    return parts[layer.kind](layer, in_levels=net.in_levels(i), widths=widths, lanes=lanes,
                             use_dsp=use_dsp, sorted_firing=sorted_firing,
                             single_port=single_port, banks=banks)


FORMS = ("dual", "single", "dual-one-bank", "single-one-bank")
"""How a hidden layer keeps its membranes: ``dual`` (a RAM with two reads and a write a
cycle, the core at full speed) or ``single`` (one single-port RAM, such as an iCE40 SPRAM;
the core takes a step every :data:`~onespike.hdl.single_port.PACE` cycles,
:mod:`~onespike.hdl.single_port`); ``-one-bank``: one bank instead of two, half the
memory, and a sample integrates only once the one before has fired."""

MEMBRANES = ("auto",) + FORMS
"""``membranes`` for every layer: one of :data:`FORMS`, or ``auto``, which is dual here; a
board's planner makes it single, then one bank, where its block RAM runs short
(:func:`onespike.boards.fit.fit`)."""


def membrane_forms(net, membranes) -> list:
    """``membranes`` (one of :data:`MEMBRANES` for every layer that has a choice, or one
    per layer, None where a layer has none) as ``(single_port, banks)`` per layer (None for
    a layer without a choice). Only hidden, non-recurrent weighted layers have one: the
    readout sends its membranes as logits while they are read, a recurrent layer's state
    loops back."""
    able = [hasattr(layer, "weight") and not layer.is_readout
            and not isinstance(layer, Recurrent) for layer in net.layers]
    if isinstance(membranes, str):
        if membranes not in MEMBRANES:
            raise OnespikeError(f"membranes must be one of {', '.join(MEMBRANES)}, not "
                                f"{membranes!r}")
        membranes = [("dual" if membranes == "auto" else membranes) if a else None
                     for a in able]
    membranes = list(membranes)
    if len(membranes) != len(net.layers) or any(
            m is not None and (m not in FORMS or not a) for m, a in zip(membranes, able)):
        raise OnespikeError(f"membranes per layer must give one of {', '.join(FORMS)} for "
                            f"each hidden dense or convolution layer of the "
                            f"{len(net.layers)} layers (None for the others), not "
                            f"{membranes!r}")
    return [None if m is None else (m.startswith("single"), 1 if "one-bank" in m else 2)
            for m in membranes]


def form_name(single_port, banks) -> str:
    """The :data:`FORMS` name of single-port or not, ``banks``."""
    return ("single" if single_port else "dual") + ("-one-bank" if banks == 1 else "")


def more_lanes(layer, lanes):
    """The next lane count above ``lanes`` that cuts ``layer``'s groups (None: none does)."""
    size = layer.weight.shape[0]
    return next((q for q in range(lanes + 1, size + 1) if -(-size // q) < -(-size // lanes)),
                None)


def _assumed_spikes(net):
    sizes = [int(np.prod(net.encoder.shape))] + [int(np.prod(l.out_shape))
                                                  for l in net.layers]
    return [SPIKE_SHARE * n for n in sizes[:-1]]


def firing_per_layer(net, lanes, firing) -> list:
    """``firing`` (one of :data:`~onespike.hdl.firing.FIRINGS`, or one per layer) as one
    choice per layer, ``"auto"`` resolved by :func:`choose_firing`."""
    if isinstance(firing, str):
        if firing not in FIRINGS:
            raise OnespikeError(f"firing must be one of {', '.join(FIRINGS)}, not {firing!r}")
        return choose_firing(net, lanes) if firing == "auto" else [firing] * len(net.layers)
    firing = list(firing)
    phaseless = [isinstance(layer, MaxPool) or layer.is_readout for layer in net.layers]
    if len(firing) != len(net.layers) or any(
            f not in ("sweep", "sorted") and not (f is None and none_ok)
            for f, none_ok in zip(firing, phaseless)):
        raise OnespikeError(f"firing per layer must give sweep or sorted for each of the "
                            f"{len(net.layers)} layers (or None for the readout and "
                            f"max-pooling layers, which have no firing phase), not {firing!r}")
    return [f or "sweep" for f in firing]


def choose_firing(net, lanes, spikes=None) -> list:
    """Sort the layer whose sweep is the slowest stage of the pipeline, and again while
    that makes the pipeline faster; keep the sorted layers only if together they save at
    least :data:`SORT_GAIN` of the cycles per sample (the cycle model on ``spikes``, as
    :func:`~onespike.hdl.cycles.cycle_estimate` takes them; by default
    :data:`SPIKE_SHARE` of every stream), else sweep everywhere: the sweep's cores are
    smaller."""
    lanes = layer_lanes(net, lanes)
    if spikes is None:                       # the planners ask again and again: once each
        if _CHOSEN.get("net") is not net:
            _CHOSEN.clear()
            _CHOSEN["net"] = net
        if tuple(lanes) not in _CHOSEN:
            _CHOSEN[tuple(lanes)] = _choose_firing(net, lanes, _assumed_spikes(net))
        return list(_CHOSEN[tuple(lanes)])
    return _choose_firing(net, lanes, spikes)


_CHOSEN = {}
""":func:`choose_firing`'s answers at the assumed activity for one network (``"net"``), by
lanes: every accelerator built with ``firing="auto"`` and every planner step asks."""


def _choose_firing(net, lanes, spikes) -> list:
    def estimate(firing):
        estimate = cycle_estimate(AcceleratorPlan(net, lanes=lanes, firing=firing), spikes)
        return estimate["steady"], {k: v for k, v in estimate["stages"].items()
                                    if not k.startswith("stream")}
    sweep = ["sweep"] * len(net.layers)
    chosen = sweep
    base, stages = estimate(chosen)
    steady = base
    while True:
        name = max(stages, key=stages.get)
        n = stage_layer(name) if name.endswith("_fire") else None
        if n is None or chosen[n] == "sorted" or not sorting_pays(net.layers[n], lanes[n]):
            break
        trial = chosen[:n] + ["sorted"] + chosen[n + 1:]
        after, trial_stages = estimate(trial)
        if after >= steady:
            break
        chosen, steady, stages = trial, after, trial_stages
    return chosen if steady <= (1 - SORT_GAIN) * base else sweep


def balance_lanes(net, total: int, spikes=None) -> list:
    """Lanes per layer that spend a budget of ``total`` lanes (summed over the layers, a
    max-pooling layer counting 1) where the work is: from one lane each, the layer of the
    slowest stage gets its next lane count that cuts its groups, while the budget lasts
    (the cycle model on ``spikes``, by default :data:`SPIKE_SHARE` of every stream); the
    fastest configuration on the way is returned. The
    same budget as ``P`` lanes everywhere costs about the same logic, spent on the
    bottleneck. Firing is chosen on the same activity (:func:`choose_firing`); build the
    accelerator with ``firing=choose_firing(net, lanes, spikes)`` to get what was planned."""
    spikes = _assumed_spikes(net) if spikes is None else spikes
    lanes, best = [1] * len(net.layers), None
    while True:
        firing = choose_firing(net, lanes, spikes)
        estimate = cycle_estimate(AcceleratorPlan(net, lanes=lanes, firing=firing), spikes)
        if best is None or estimate["steady"] < best[0]:
            best = estimate["steady"], list(lanes)
        stages = {k: v for k, v in estimate["stages"].items() if k.startswith("layer")}
        n = stage_layer(max(stages, key=stages.get))
        if not hasattr(net.layers[n], "weight"):      # a max pool: its consumer's lanes
            n += 1
        q = more_lanes(net.layers[n], lanes[n])
        if q is None or sum(lanes) - lanes[n] + q > total:
            return best[1]
        lanes[n] = q


def spend_lanes(net, lanes, spikes=None, firing="auto") -> tuple:
    """``(lanes per layer, how, cycles)`` for ``--lanes``: a list is taken as it is
    (``how`` ``"as given"``, ``cycles`` empty); one count ``P`` is a budget, the lanes that
    ``P`` everywhere would take (:func:`layer_lanes`), spent where the work is
    (:func:`balance_lanes` on ``spikes``) when the cycle model finds that faster with the
    ``firing`` the accelerator will get (``how`` ``"by work"``), else ``P`` everywhere
    (``"uniform"``); ``cycles``: the steady cycles per sample of each (``{"uniform": …,
    "by work": …}``) where both were estimated."""
    if not (isinstance(lanes, int) and not isinstance(lanes, bool)):
        return layer_lanes(net, lanes), "as given", {}
    uniform = layer_lanes(net, lanes)
    if sum(uniform) == len(uniform):                  # one lane each: nothing to spend
        return uniform, "uniform", {}
    balanced = balance_lanes(net, sum(uniform), spikes)
    if balanced == uniform:
        return uniform, "uniform", {}
    spikes = _assumed_spikes(net) if spikes is None else spikes
    cycles = {how: cycle_estimate(AcceleratorPlan(
                  net, lanes=per_layer, firing=firing_per_layer(net, per_layer, firing)),
                  spikes)["steady"]
              for how, per_layer in (("uniform", uniform), ("by work", balanced))}
    if cycles["by work"] < cycles["uniform"]:
        return balanced, "by work", cycles
    return uniform, "uniform", cycles


class PipelinePlan:
    """What every coding's accelerator keeps of its options: the network, its lanes per
    layer and ``use_dsp`` (the lane multiplies may go to DSP blocks; else shifted adds;
    with ``per_layer_dsp`` also one flag per layer); a network no coding can build is
    refused."""

    def _take(self, net, lanes, use_dsp, per_layer_dsp=False):
        if per_layer_dsp and isinstance(use_dsp, (list, tuple)):
            use_dsp = tuple(use_dsp)
            if len(use_dsp) != len(net.layers):
                raise TypeError(f"use_dsp per layer must give {len(net.layers)} flags, "
                                f"not {len(use_dsp)}")
            for u in use_dsp:
                flag(u, "use_dsp")
            self._use_dsp = use_dsp
        else:
            self._use_dsp = flag(use_dsp, "use_dsp")
        if isinstance(net.layers[-1], Conv):
            raise OnespikeError("the last layer is a convolution; the readout must be a "
                                "Linear layer")
        self._net = net
        self._lanes = layer_lanes(net, lanes)

    @property
    def net(self):
        return self._net

    @property
    def lanes(self):
        return tuple(self._lanes)

    @property
    def use_dsp(self):
        return self._use_dsp

    @property
    def multipliers(self):
        """Lane multiplies of all cores: DSP blocks with ``use_dsp``."""
        return sum(getattr(core, "multipliers", 0) for core in self.cores)

    @property
    def firing(self):
        """Per core: ``"sorted"``, ``"sweep"`` or None (no firing phase)."""
        return tuple(None if not isinstance(c, (NeuronSizes, RecurrentSizes))
                     or c.is_readout else "sorted" if c.sorted_firing else "sweep"
                     for c in self.cores)

    @property
    def membranes(self):
        """Per core: its :data:`FORMS` name, or None (no membranes to choose for)."""
        return tuple(form_name(c.single_port, c.banks)
                     if isinstance(c, NeuronSizes) and not c.is_readout else None
                     for c in self.cores)

    def dsp_layers(self) -> tuple:
        """Per layer whether its lane multiplies are plain ``*`` (DSP blocks)."""
        use = self._use_dsp
        return use if isinstance(use, tuple) else (use,) * len(self._net.layers)

    @property
    def dsp_multipliers(self):
        """The DSP blocks the layers with ``use_dsp`` take."""
        return sum(getattr(core, "multipliers", 0)
                   for core, use in zip(self.cores, self.dsp_layers()) if use)


class AcceleratorPlan(PipelinePlan):
    """The TTFS accelerator of ``net`` with these options (as
    :class:`~onespike.hdl.top.Accelerator` takes them), resolved once: lanes per layer,
    firing per layer (``"auto"``: :func:`choose_firing`), membrane forms, DSP use, and
    ``encoder`` and ``cores``, each part's sizes. The resolved options (``lanes``,
    ``firing``, ``membranes`` per layer, ``use_dsp``, ``encoder.banks``) build the same plan
    again (:func:`onespike.hdl.generate.plan`)."""

    #: the parts' classes by kind
    PARTS = SIZES

    def __init__(self, net: Network, *, lanes=1, use_dsp=True, firing="auto",
                 membranes="dual", encoder_banks=2):
        self._take(net, lanes, use_dsp, per_layer_dsp=True)
        forms = membrane_forms(net, membranes)
        single = [bool(f and f[0]) for f in forms]
        per_layer = firing_per_layer(net, self._lanes, firing)
        if not isinstance(firing, str) or firing == "sorted":
            clash = [i for i, (f, s) in enumerate(zip(per_layer, single))
                     if s and f == "sorted"]
            if clash:
                raise OnespikeError(f"layer {clash[0]}: sorted firing needs dual-port "
                                    f"membranes; give it sweep firing or dual membranes")
        per_layer = ["sweep" if s else f for f, s in zip(per_layer, single)]
        widths = net.widths()
        self.cores = []
        for i, layer in enumerate(net.layers):
            if isinstance(layer, MaxPool):
                self.cores.append(self.PARTS["maxpool"](layer, levels=net.in_levels(i)))
            else:
                self.cores.append(neuron_core(
                    net, i, parts=self.PARTS, widths=widths[i], lanes=self._lanes[i],
                    use_dsp=self.dsp_layers()[i], sorted_firing=per_layer[i] == "sorted",
                    single_port=single[i], banks=forms[i][1] if forms[i] else 2))
        self.encoder = self.PARTS["encoder"](
            shape=net.encoder.shape, levels=net.encoder.levels,
            spike_cycles=encoder_spike_cycles(self.cores[0]), banks=encoder_banks)


class DensePlan(PipelinePlan):
    """The dense baseline accelerator of ``net`` with these options (as
    :class:`~onespike.hdl.dense_top.DenseAccelerator` takes them): lanes per layer, and
    ``encoder`` and ``cores``, each part's sizes."""

    coding = "dense"
    #: the parts' classes by kind
    PARTS = DENSE_SIZES

    def __init__(self, net: Network, *, lanes=1, skip_zeros=True, use_dsp=True):
        if net.steps is not None:
            raise OnespikeError("the dense coding has no recurrent core: build this sequence "
                                "network with --coding ttfs (the default)")
        self._take(net, lanes, use_dsp)
        self._skip_zeros = flag(skip_zeros, "skip_zeros")
        self.encoder = self.PARTS["encoder"](shape=net.encoder.shape,
                                             levels=net.encoder.levels, skip_zeros=skip_zeros)
        self.cores = [self.PARTS["maxpool"](layer, levels=net.in_levels(i),
                                            skip_zeros=skip_zeros)
                      if isinstance(layer, MaxPool) else
                      self.PARTS["mac"](layer, in_levels=net.in_levels(i),
                                        lanes=self._lanes[i], skip_zeros=skip_zeros,
                                        use_dsp=use_dsp)
                      for i, layer in enumerate(net.layers)]

    @property
    def skip_zeros(self):
        return self._skip_zeros
