"""Quantization-aware fine-tuning: the trained module's forward pass is the golden model bit
for bit (MLP and CNN, before and after training), training lowers the loss and raises the
integer network's accuracy at 1 bit, the spike penalty lowers the spikes, the input can take
more bits than the hidden layers (and the RTL follows), and bad arguments are one error."""

import numpy as np
import pytest

from onespike.errors import OnespikeError
from onespike.hdl.top import Accelerator
from onespike.sim import closed_form, first_mismatch
from onespike.sim.hardware import run


@pytest.fixture(scope="module")
def bn_mlp(torch):
    """The issue's 64-48-32-10 digits MLP with BatchNorm, trained in float."""
    from onespike import zoo

    nn = torch.nn
    torch.manual_seed(0)
    data = zoo.digits()
    model = zoo.train(nn.Sequential(nn.Linear(64, 48), nn.BatchNorm1d(48), nn.ReLU(),
                                    nn.Linear(48, 32), nn.BatchNorm1d(32), nn.ReLU(),
                                    nn.Linear(32, 10)), data)
    return model, data


def accuracy(net, x, y):
    return float(np.mean(closed_form(net, net.encoder.encode(x)).classes == y))


def assert_forward_is_golden(torch, tuned, x):
    net = tuned.network()
    with torch.no_grad():
        logits = tuned(x).numpy()
    assert np.array_equal(logits, closed_form(net, net.encoder.encode(x)).logits)


def test_the_forward_pass_is_the_golden_model_before_and_after_training(torch, bn_mlp,
                                                                        digits_cnn_net):
    from onespike.mapper import convert, finetune

    model, data = bn_mlp
    tuned = finetune(model, data.x_train, data.y_train, act_bits=2, epochs=0,
                     progress=False)
    plain = convert(model, data.x_train, act_bits=2)
    assert all(np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
               for a, b in zip(tuned.network().layers, plain.layers))   # 0 epochs: as mapped
    assert_forward_is_golden(torch, tuned, data.x_test)
    tuned = finetune(model, data.x_train, data.y_train, act_bits=2, epochs=2,
                     progress=False, keep="last")
    assert_forward_is_golden(torch, tuned, data.x_test)
    # a CNN: position-dependent bias at the padded first layer, max and sum pooling
    net, images = digits_cnn_net
    tuned = finetune(net, images.x_train[:256], images.y_train[:256], epochs=1,
                     progress=False, keep="last")
    assert any(not np.array_equal(a.weight, b.weight)
               for a, b in zip(tuned.network().layers, net.layers) if hasattr(a, "weight"))
    assert_forward_is_golden(torch, tuned, images.x_test[:100])


SEEDS = [*range(12), 19, 25, 35]     # 19, 25, 35: the random networks with sum pooling


def random_net(seed):
    from onespike.sim import random_network

    return random_network(np.random.default_rng(seed), conv=seed % 3 != 0, max_layers=5)


def test_the_random_networks_hold_every_layer_kind():
    from onespike.ir import MaxPool

    layers = [layer for seed in SEEDS for layer in random_net(seed).layers]
    assert any(isinstance(layer, MaxPool) for layer in layers)
    synaptic = [layer for layer in layers if not isinstance(layer, MaxPool)]
    assert {layer.kind for layer in synaptic} == {"dense", "conv"}
    assert any(layer.pooling for layer in synaptic)
    assert any(layer.kind == "conv" and max(layer.padding) > 0 for layer in synaptic)
    assert any(layer.kind == "conv" and max(layer.stride) > 1 for layer in synaptic)


def forward_equals_golden(torch, seed) -> bool:
    """Integers, not approximately: every hidden layer's activations and the logits of the
    random network ``seed`` (dense, conv with stride and padding, max and sum pooling,
    position bias, 1 to 8 bits per layer) against ``closed_form``."""
    from onespike.ir import MaxPool, signed_bits
    from onespike.mapper.tuned import TunedNetwork
    net, rng = random_net(seed), np.random.default_rng(seed + 1000)
    bits = max(signed_bits(int(np.abs(l.weight).max(initial=1))) for l in net.layers
               if not isinstance(l, MaxPool))
    a0 = rng.integers(0, net.encoder.levels + 1, size=(16, *net.encoder.shape))
    trace = closed_form(net, a0)
    with torch.no_grad():
        logits, hidden = TunedNetwork(net, max(bits, 2)).integer_forward(
            torch.as_tensor(a0, dtype=torch.float64))
    synaptic = [l for l in net.layers[:-1] if not isinstance(l, MaxPool)]
    outputs = [trace.activations[i + 1] for i, layer in enumerate(net.layers[:-1])
               if not isinstance(layer, MaxPool)]
    assert len(hidden) == len(outputs)
    return np.array_equal(logits.numpy(), trace.logits) and all(
        np.array_equal((h * layer.levels).round().numpy(), a)
        for h, a, layer in zip(hidden, outputs, synaptic))


@pytest.mark.parametrize("seed", SEEDS)
def test_every_layer_of_random_networks_is_the_golden_model(torch, seed):
    assert forward_equals_golden(torch, seed)


class _Planted:
    """A stand-in for a module (``torch`` or ``torch.nn.functional``) as the fine-tuning
    forward pass sees it, with one function replaced."""

    def __init__(self, module, **replaced):
        self._module, self._replaced = module, replaced

    def __getattr__(self, name):
        return self._replaced.get(name, getattr(self._module, name))


def _planted_faults(torch):
    F = torch.nn.functional
    return {
        # the activation rounded to nearest instead of floor(y / R)
        "round": ("torch", dict(div=lambda a, b, rounding_mode=None: torch.round(a / b))),
        # average pooling where the mapper folds a sum
        "average": ("F", dict(avg_pool2d=lambda a, k, divisor_override=None:
                              F.avg_pool2d(a, k))),
        # the first spike of a window taken as the smallest activation, not the largest
        "min pool": ("F", dict(max_pool2d=lambda a, *args: -F.max_pool2d(-a, *args))),
    }


@pytest.mark.parametrize("fault", ["round", "average", "min pool"])
def test_a_fault_planted_in_the_forward_pass_is_caught(torch, fault, monkeypatch):
    from onespike.mapper import tuned

    name, replaced = _planted_faults(torch)[fault]
    monkeypatch.setattr(tuned, name, _Planted(getattr(tuned, name), **replaced))
    assert not all(forward_equals_golden(torch, seed) for seed in SEEDS)


def test_fine_tuning_at_one_bit_beats_plain_conversion(torch, bn_mlp):
    from onespike.mapper import convert, finetune

    model, data = bn_mlp
    plain = convert(model, data.x_train, act_bits=1)
    tuned = finetune(model, data.x_train, data.y_train, act_bits=1, epochs=30,
                     held_out=0.2, progress=False)
    losses = [h["loss"] for h in tuned.history[1:]]
    assert losses[-1] < 0.5 * losses[0]
    net = convert(tuned, data.x_train)              # the trained quantizers, as trained
    assert all(np.array_equal(a.weight, b.weight)
               for a, b in zip(net.layers, tuned.network().layers) if hasattr(a, "weight"))
    assert accuracy(net, data.x_train, data.y_train) > \
        accuracy(plain, data.x_train, data.y_train) + 0.03
    assert accuracy(net, data.x_test, data.y_test) >= accuracy(plain, data.x_test, data.y_test)


def test_a_converted_network_keeps_its_weight_bits(torch, bn_mlp):
    from onespike.mapper import convert, finetune

    model, data = bn_mlp
    net = convert(model, data.x_train, act_bits=2, weight_bits=3)
    tuned = finetune(net, data.x_train, data.y_train, epochs=3, keep="last", progress=False)
    assert max(np.abs(l.weight).max() for l in tuned.network().layers) <= 3


def test_the_spike_penalty_lowers_the_spikes(torch, bn_mlp):
    from onespike.mapper import finetune

    model, data = bn_mlp
    runs = {w: finetune(model, data.x_train, data.y_train, act_bits=2, epochs=10,
                        spike_weight=w, keep="last", progress=False) for w in (0.0, 1.0)}
    spikes = {w: closed_form(t.network(), t.network().encoder.encode(data.x_test)).spikes.mean()
              for w, t in runs.items()}
    assert spikes[1.0] < 0.85 * spikes[0.0]
    assert accuracy(runs[1.0].network(), data.x_test, data.y_test) > 0.85


def test_the_input_can_take_more_bits_than_the_hidden_layers(torch, bn_mlp):
    from onespike.mapper import convert, finetune

    model, data = bn_mlp
    net = convert(model, data.x_train, act_bits=1, input_bits=4)
    assert net.encoder.act_bits == 4 and {l.act_bits for l in net.layers[:-1]} == {1}
    tuned = finetune(model, data.x_train, data.y_train, act_bits=1, input_bits=4, epochs=1,
                     progress=False)
    assert tuned.network().encoder.act_bits == 4
    a0 = net.encoder.encode(data.x_test[:6])
    hardware = run(Accelerator(net, lanes=4), a0)
    assert first_mismatch(net, closed_form(net, a0), hardware.trace) is None


@pytest.mark.parametrize("call, message", [
    (lambda f, m, d: f(m, d.x_train, d.y_train[:-1], progress=False), "labels must be"),
    (lambda f, m, d: f(m, d.x_train, d.y_train + 10, progress=False), "labels must lie"),
    (lambda f, m, d: f(m, d.x_train, d.y_train, epochs=-1, progress=False), "epochs must"),
    (lambda f, m, d: f(m, d.x_train, d.y_train, input_bits=9), "input_bits must"),
    (lambda f, m, d: f(m, d.x_train, d.y_train, act_bits=0), "act_bits must"),
    (lambda f, m, d: f(m, d.x_train[:, :10], d.y_train), "do not fit the model"),
])
def test_bad_arguments_are_one_clear_error(torch, bn_mlp, call, message):
    from onespike.mapper import finetune

    model, data = bn_mlp
    with pytest.raises(OnespikeError, match=message):
        call(finetune, model, data)


def test_an_unsupported_layer_is_refused_before_training(torch, bn_mlp):
    from onespike.mapper import finetune

    _, data = bn_mlp
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Sigmoid(),
                                torch.nn.Linear(16, 10))
    with pytest.raises(OnespikeError, match="Sigmoid|sigmoid"):
        finetune(model, data.x_train, data.y_train, progress=False)


def test_a_tuned_network_is_not_converted_at_other_bits(torch, bn_mlp):
    from onespike.mapper import convert, finetune

    model, data = bn_mlp
    tuned = finetune(model, data.x_train, data.y_train, act_bits=2, epochs=0, progress=False)
    with pytest.raises(OnespikeError, match="trained with act_bits 2, not 3"):
        convert(tuned, data.x_train, act_bits=3)
    with pytest.raises(OnespikeError, match="the network expects"):
        convert(tuned, data.x_train[:, :10])


def test_the_command_line_trains_a_network_file(torch, bn_mlp, tmp_path, capsys):
    import json

    from onespike.cli import main
    from onespike.ir import load, save
    from onespike.mapper import convert

    model, data = bn_mlp
    save(convert(model, data.x_train, act_bits=1, input_bits=4), tmp_path / "net.npz")
    np.save(tmp_path / "x.npy", data.x_train)
    np.save(tmp_path / "y.npy", data.y_train)
    out = tmp_path / "tuned.npz"
    args = ["finetune", str(tmp_path / "net.npz"), "--data", str(tmp_path / "x.npy"),
            "--labels", str(tmp_path / "y.npy"), "--epochs", "3", "-o", str(out)]
    assert main(args + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    tuned = load(out)
    assert tuned.encoder.act_bits == 4 and len(result["history"]) == 4
    kept = result["history"][result["best_epoch"]]["held_out_loss"]
    assert kept == min(h["held_out_loss"] for h in result["history"])
    bad = tmp_path / "bad.npz"
    args[5] = str(tmp_path / "x.npy")            # float "labels"
    assert main(args[:-1] + [str(bad)]) == 2
    assert "must hold integer class labels" in capsys.readouterr().err
    assert not bad.exists()
