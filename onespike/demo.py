"""``onespike demo``: the whole flow on built-in data, in well under a minute."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["run_demo"]


def run_demo(out: Path, *, act_bits=4, weight_bits=8, progress=True):
    """Train a 64-64-10 MLP on digits, export, convert, and compare float/quantized/spiking."""
    import torch

    from onespike import zoo
    from onespike.ir import save
    from onespike.mapper import check_bits, convert_exported
    from onespike.sim.evaluate import evaluate

    check_bits(act_bits, weight_bits)
    out.mkdir(parents=True, exist_ok=True)
    data = zoo.digits()
    model = zoo.train(zoo.mlp([64, 64, 10]), data, progress=progress)
    float_acc = zoo.float_accuracy(model, data.x_test, data.y_test)
    model_path = out / "digits_mlp.pt2"
    torch.export.save(torch.export.export(model, (torch.as_tensor(data.x_train[:1]),)),
                      model_path)
    np.save(out / "calib.npy", data.x_train)
    np.save(out / "test_x.npy", data.x_test)
    np.save(out / "test_y.npy", data.y_test)
    net = convert_exported(model_path, data.x_train, act_bits=act_bits,
                           weight_bits=weight_bits)
    net_path = save(net, out / "digits_mlp.npz")
    quant, _ = evaluate(net, data.x_test, data.y_test, mode="closed", progress=False)
    spiking, _ = evaluate(net, data.x_test, data.y_test, mode="event", progress=progress)
    result = {"dataset": "digits", "test_samples": int(len(data.y_test)),
              "act_bits": act_bits, "weight_bits": weight_bits,
              "float_accuracy": float_acc, "quantized_accuracy": quant["accuracy"],
              "spiking_accuracy": spiking["accuracy"],
              "spikes_per_neuron": spiking["spikes_per_neuron"],
              "synaptic_ops_per_inference": spiking["synaptic_ops_per_inference"],
              "latency_steps": net.latency_steps, "net": str(net_path),
              "model": str(model_path)}
    lines = [
        f"digits 64-64-10 MLP, {len(data.y_test)} test images, "
        f"act_bits {act_bits}, weight_bits {weight_bits}",
        f"  float      accuracy {float_acc:.4f}",
        f"  quantized  accuracy {quant['accuracy']:.4f}   (closed form, integer)",
        f"  spiking    accuracy {spiking['accuracy']:.4f}   (event simulation, "
        f"{spiking['spikes_per_neuron']:.2f} spikes/neuron, "
        f"{net.latency_steps} time steps)",
        f"  wrote {model_path}, {net_path}",
        f"  next: onespike simulate {net_path} --inputs {out / 'test_x.npy'} "
        f"--labels {out / 'test_y.npy'}",
    ]
    return result, lines
