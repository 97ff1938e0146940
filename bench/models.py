"""Bench models at published float accuracy, trained once and cached under
build/bench/models/ (state dicts, loaded with ``weights_only=True``; the accuracy beside
them in JSON): the MNIST 784-128-10 MLP (at least 98 %), the MNIST CNN ``zoo.mnist_cnn``
(at least 99 %) and the Fashion-MNIST CNN of bench/lean_nets.py (at least 90 %).

Run: .venv/bin/python bench/models.py [NAME...]     (trains what is not cached and prints
     each model's float test accuracy; the CNNs take several minutes each on 2 cores)
"""

import json
import sys
from pathlib import Path

ROOT = Path("build/bench/models")
MODELS = {   # name: (data set, image input, epochs, learning rate, least float accuracy)
    "mnist-mlp": ("mnist", False, 40, 2e-3, 0.98),
    "mnist-cnn": ("mnist", True, 12, 1e-3, 0.99),
    "fashion-cnn": ("fashion-mnist", True, 15, 1e-3, 0.90),
}


def architecture(name):
    from onespike import zoo

    if name == "mnist-mlp":              # 784-128-10; dropout only while training
        import torch.nn as nn
        return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Dropout(0.2),
                             nn.Linear(128, 10))
    if name == "mnist-cnn":
        return zoo.mnist_cnn()
    sys.path.insert(0, str(Path(__file__).parent))
    from lean_nets import fashion_cnn
    return fashion_cnn()


def bench_model(name):
    """``(model, data, float test accuracy)``, trained on first use."""
    import torch
    from onespike import zoo

    data_name, image, epochs, lr, least = MODELS[name]
    data = zoo.idx_dataset(data_name, image=image)
    model = architecture(name)
    weights, record = ROOT / f"{name}.pt", ROOT / f"{name}.json"
    if weights.is_file() and record.is_file():
        model.load_state_dict(torch.load(weights, weights_only=True))
        return model.eval(), data, json.loads(record.read_text())["float_accuracy"]
    zoo.train(model, data, epochs=epochs, batch=128, lr=lr, progress=True)
    accuracy = zoo.float_accuracy(model, data.x_test, data.y_test)
    if accuracy < least:
        print(f"warning: {name} reached {accuracy:.2%}, below {least:.0%}", file=sys.stderr)
    ROOT.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), weights)
    record.write_text(json.dumps({"float_accuracy": accuracy, "epochs": epochs}) + "\n")
    return model, data, accuracy


if __name__ == "__main__":
    for name in sys.argv[1:] or MODELS:
        print(f"{name}: float test accuracy {bench_model(name)[2]:.2%}", flush=True)
