"""Row-by-row MNIST with a ReLU RNN: 28 steps of 28 pixels, 128 hidden neurons, a Linear
readout (``zoo.row_rnn``), converted at 4 activation bits; float against spiking accuracy on
the 10,000 test images.

Training (one thread, seed 0, about two minutes): float epochs, then epochs on the integer
network's grid (``model.bits = 4``: input and state rounded with a straight-through
gradient), Adam, gradient norm clipped at 1. The model is cached as a state dict under
build/bench/models/ (``mnist-rnn.pt``, its float accuracy in ``mnist-rnn.json``) for the
hardware benches: ``from rnn_mnist import bench_rnn``; the converted network is written to
build/bench/rnn_mnist/net.npz.

Run: ONESPIKE_DATA=/work/shared/data .venv/bin/python bench/rnn_mnist.py [--json]
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from models import ROOT  # noqa: E402

HIDDEN, FLOAT_EPOCHS, GRID_EPOCHS, ACT_BITS, WEIGHT_BITS = 128, 4, 12, 4, 8
OUT = Path("build/bench/rnn_mnist")


def rows(data):
    """MNIST as sequences: (samples, 28 rows, 28 pixels)."""
    from onespike import zoo

    return zoo.Dataset("mnist-rows", *(a.reshape(-1, 28, 28) if a.ndim == 2 else a
                                       for a in (data.x_train, data.y_train, data.x_test,
                                                 data.y_test)))


def bench_rnn(progress=True):
    """``(model, data as rows, float test accuracy)``, trained on first use."""
    import torch
    from onespike import zoo

    torch.set_num_threads(1)
    data = rows(zoo.idx_dataset("mnist"))
    model = zoo.row_rnn(28, HIDDEN, 10)
    weights, record = ROOT / "mnist-rnn.pt", ROOT / "mnist-rnn.json"
    if weights.is_file() and record.is_file():
        model.load_state_dict(torch.load(weights, weights_only=True))
        return model.eval(), data, json.loads(record.read_text())["float_accuracy"]
    start = time.time()
    zoo.train(model, data, epochs=FLOAT_EPOCHS, batch=128, lr=2e-3, clip=1.0,
              progress=progress)
    model.bits = ACT_BITS
    zoo.train(model, data, epochs=GRID_EPOCHS, batch=128, lr=1e-3, clip=1.0, seed=1,
              progress=progress)
    model.bits = None
    accuracy = zoo.float_accuracy(model, data.x_test, data.y_test)
    ROOT.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), weights)
    record.write_text(json.dumps({
        "float_accuracy": accuracy, "hidden": HIDDEN, "float_epochs": FLOAT_EPOCHS,
        "grid_epochs": GRID_EPOCHS, "grid_bits": ACT_BITS,
        "training_seconds": round(time.time() - start)}) + "\n")
    return model, data, accuracy


def main(as_json=False):
    from onespike.ir import save
    from onespike.mapper import convert
    from onespike.sim.evaluate import evaluate

    model, data, float_acc = bench_rnn(progress=not as_json)
    start = time.time()
    net = convert(model, data.x_train[:5000], act_bits=ACT_BITS, weight_bits=WEIGHT_BITS)
    convert_s = time.time() - start
    quant, q_classes = evaluate(net, data.x_test, data.y_test, mode="closed", progress=False)
    start = time.time()
    spiking, s_classes = evaluate(net, data.x_test, data.y_test, mode="event",
                                  progress=not as_json)
    event_s = time.time() - start
    path = save(net, OUT / "net.npz")
    result = {"hidden": HIDDEN, "steps": net.steps, "act_bits": ACT_BITS,
              "weight_bits": WEIGHT_BITS, "test_samples": len(data.y_test),
              "float_accuracy": float_acc, "quantized_accuracy": quant["accuracy"],
              "spiking_accuracy": spiking["accuracy"],
              "event_equals_closed_form": bool(np.array_equal(q_classes, s_classes)),
              "spikes_per_inference": spiking["spikes_per_inference"],
              "synaptic_ops_per_inference": spiking["synaptic_ops_per_inference"],
              "latency_steps": net.latency_steps, "convert_seconds": round(convert_s, 1),
              "event_sim_seconds": round(event_s, 1), "net": str(path)}
    if as_json:
        print(json.dumps(result))
        return
    print(f"row-by-row MNIST, ReLU RNN 28-{HIDDEN}-10, {net.steps} steps, act_bits "
          f"{ACT_BITS}, weight_bits {WEIGHT_BITS}, {len(data.y_test)} test sequences")
    print(f"  float      accuracy {float_acc:.4f}")
    print(f"  quantized  accuracy {quant['accuracy']:.4f}   (closed form)")
    print(f"  spiking    accuracy {spiking['accuracy']:.4f}   (event simulation, "
          f"{spiking['spikes_per_inference']:.0f} spikes, "
          f"{spiking['synaptic_ops_per_inference']:.0f} additions per sequence)")
    print(f"  difference {100 * (float_acc - spiking['accuracy']):+.2f} points; wrote {path}")


if __name__ == "__main__":
    main("--json" in sys.argv[1:])
