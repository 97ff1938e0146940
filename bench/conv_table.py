"""MNIST / Fashion-MNIST CNN end to end: accuracy (float, quantized, golden, RTL), cycles and
memory of the generated accelerator.

Run: .venv/bin/python bench/conv_table.py [--data mnist|fashion-mnist] [--rtl-images N]
     [--lanes P] [--sim icarus verilator]

The RTL column is the class the Verilog computes, checked by `verify` against the golden
model on the first N test images (every layer compared): with zero mismatches it equals
the golden column on those images.
"""

import argparse
import sys
import tempfile

import numpy as np
import torch

from onespike import zoo
from onespike.hdl.cycles import cycle_estimate, integration_cycles
from onespike.hdl.maxpool import MaxPoolSizes
from onespike.hdl.plan import AcceleratorPlan
from onespike.sim.evaluate import evaluate
from onespike.mapper import convert
from onespike.sim import closed_form
from onespike.sim.verify import verify


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="mnist", choices=("mnist", "fashion-mnist"))
    parser.add_argument("--rtl-images", type=int, default=100)
    parser.add_argument("--lanes", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--sim", nargs="+", default=["verilator", "icarus"])
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"command: python {' '.join(sys.argv)}")
    data = zoo.idx_dataset(args.data, image=True)
    model = zoo.train(zoo.mnist_cnn(), data, epochs=args.epochs, batch=128, lr=1e-3)
    net = convert(model, data.x_train[:5000], act_bits=4, weight_bits=8)
    fl = zoo.float_accuracy(model, data.x_test, data.y_test)
    quantized, _ = evaluate(net, data.x_test, data.y_test, mode="closed", progress=False)
    spiking, _ = evaluate(net, data.x_test, data.y_test, mode="event", progress=False)
    n = args.rtl_images
    a0 = net.encoder.encode(data.x_test[:n])
    golden = closed_form(net, a0)
    head = float(np.mean(golden.classes == data.y_test[:n]))
    print(f"{args.data} CNN {[layer.kind for layer in net.layers]}, act_bits 4, weight_bits 8")
    print(f"accuracy on {len(data.x_test)} test images: float {fl:.4f}, quantized "
          f"{quantized['accuracy']:.4f}, spiking (golden, event simulation) "
          f"{spiking['accuracy']:.4f}")
    build_root = tempfile.mkdtemp(prefix="onespike-conv-")
    for simulator in args.sim:
        r = verify(net, a0, lanes=args.lanes, simulator=simulator, build_root=build_root,
                   idle=0.0, backpressure=0.0, progress=True)
        rtl = head if r["mismatches"] == 0 else float("nan")
        print(f"RTL on {simulator}, first {n} images: accuracy {rtl:.4f} (golden {head:.4f}), "
              f"{r['spikes_compared']} spike times and logits compared, {r['mismatches']} "
              f"mismatches, {r['cycles_per_inference']:.0f} cycles/image back to back, "
              f"latency {r['latency_cycles']} cycles, {r['samples_per_second']} images/s "
              f"simulated")
    top = AcceleratorPlan(net, lanes=args.lanes)
    maps = golden.activations[:len(net.layers)]
    spikes = [int(round((a.reshape(n, -1) > 0).sum(axis=1).mean())) for a in maps]
    model_cycles = cycle_estimate(top, maps)
    print(f"cycle model on these images' spikes: steady {model_cycles['steady']}, latency "
          f"{model_cycles['latency']}; chains {model_cycles['chains']}")
    print(f"{'layer':>6} {'kind':>8} {'spikes in':>10} {'bound':>8} {'weights b':>10} "
          f"{'state b':>9}")
    total_bound = 0
    for i, (layer, core) in enumerate(zip(net.layers, top.cores)):
        if isinstance(core, MaxPoolSizes):
            print(f"{i:>6} {layer.kind:>8} {spikes[i]:>10} {'':>8} {'':>10} "
                  f"{core.fired_memory_bits:>9}")
            continue
        bound = round(integration_cycles(core, maps[i])) + net.in_levels(i)
        total_bound += bound
        print(f"{i:>6} {layer.kind:>8} {spikes[i]:>10} {bound:>8} {core.weight_memory_bits:>10} "
              f"{core.state_memory_bits:>9}")
    print(f"event bound (sum over layers of the input spikes' integration cycles + steps): "
          f"{total_bound}; encoder memory {top.encoder.memory_bits} bits")


if __name__ == "__main__":
    main()
