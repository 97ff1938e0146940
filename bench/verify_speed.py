"""Speed of the RTL regression (`onespike verify`): the classic per-cycle cocotb bench
(before) against the harness bench (after), on Icarus and Verilator, one run.

Run: ONESPIKE_DATA=/work/shared/data .venv/bin/python bench/verify_speed.py
     [--images 200] [--cnn-images 20] [--classic-cnn-images 3] [--sim verilator icarus]
     [--jobs 1 2] [--nets DIR]

Workloads: the MNIST 784-128-10 MLP at 16 lanes on `--images` test images, and a
Fashion-MNIST CNN (`zoo.mnist_cnn`, act_bits 4, weight_bits 8) at 8 lanes. No idle cycles, no
backpressure (`--idle 0 --backpressure 0`), every layer compared with the golden model, the
edge samples included. samples/s = samples / run seconds, the simulator process from start
to exit (cocotb start-up, loading, simulation, decoding, golden model, check); the build
(Verilator's C++ compile, Icarus' elaboration) is reported apart and reused by later rows.
cpu s is the simulator processes' own CPU time (user + system), which other work on a
shared machine does not inflate: samples/cpu s is what one free core gives. The load
average is printed at the start and the end. `--nets DIR` keeps the trained networks there
between runs.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

from onespike import zoo
from onespike.errors import OnespikeError
from onespike.ir import load, save
from onespike.mapper import convert
from onespike.sim.verify import stimulus, verify


def mnist_mlp(nets: Path):
    mnist = zoo.idx_dataset("mnist")
    path = nets / "mnist_mlp.npz"
    if not path.is_file():
        model = zoo.train(zoo.mlp([784, 128, 10]), mnist, epochs=1, batch=128, lr=1e-3)
        save(convert(model, mnist.x_train[:5000]), path)
    return load(path), mnist.x_test


def fashion_cnn(nets: Path):
    fashion = zoo.idx_dataset("fashion-mnist", image=True)
    path = nets / "fashion_cnn.npz"
    if not path.is_file():
        model = zoo.train(zoo.mnist_cnn(), fashion, epochs=1, batch=128, lr=1e-3)
        save(convert(model, fashion.x_train[:5000], act_bits=4, weight_bits=8), path)
    return load(path), fashion.x_test


HEADER = (f"{'bench':>8} {'simulator':>10} {'jobs':>4} {'samples':>7} {'build s':>8} "
          f"{'run s':>7} {'samples/s':>10} {'cpu s':>7} {'samples/cpu s':>13} "
          f"{'cycles/sample':>14} {'mismatches':>10}")


def row(net, a0, lanes, bench, simulator, jobs, build_root):
    try:
        r = verify(net, a0, lanes=lanes, simulator=simulator, build_root=build_root,
                   idle=0.0, backpressure=0.0, progress=False, bench=bench, jobs=jobs)
    except OnespikeError as e:      # e.g. an X in a transfer: the run stopped
        print(f"{bench:>8} {simulator:>10} {jobs:>4} {len(a0):>7}  failed: {e}", flush=True)
        return None
    print(f"{bench:>8} {simulator:>10} {jobs:>4} {r['samples']:>7} {r['build_seconds']:>8.1f} "
          f"{r['run_seconds']:>7.2f} {r['samples_per_second']:>10.1f} "
          f"{r['run_cpu_seconds']:>7.2f} {r['samples_per_cpu_second']:>13.1f} "
          f"{r['cycles_per_inference']:>14.0f} {r['mismatches']:>10}", flush=True)
    if r["mismatches"]:
        print(f"  first mismatch: {r['first_mismatch']}")
    return r


def measure(name, net, x, lanes, images, classic_images, args, build_root):
    print(f"\n{name}, lanes {lanes}")
    print(HEADER)
    for simulator in args.sim:
        if classic_images:
            row(net, stimulus(net, x, classic_images), lanes, "classic", simulator, 1,
                build_root)
        for jobs in args.jobs:
            row(net, stimulus(net, x, images), lanes, "harness", simulator, jobs, build_root)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200, help="MNIST MLP test images")
    parser.add_argument("--classic-images", type=int, default=None,
                        help="MLP images for the classic bench (default: --images)")
    parser.add_argument("--cnn-images", type=int, default=20)
    parser.add_argument("--classic-cnn-images", type=int, default=3)
    parser.add_argument("--sim", nargs="+", default=["verilator", "icarus"])
    parser.add_argument("--jobs", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--nets", type=Path, help="folder to keep the trained networks in")
    parser.add_argument("--no-cnn", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"command: {' '.join([Path(sys.executable).name] + sys.argv)}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    nets = args.nets or Path(tempfile.mkdtemp(prefix="onespike-nets-"))
    nets.mkdir(parents=True, exist_ok=True)
    build_root = tempfile.mkdtemp(prefix="onespike-bench-")
    net, x = mnist_mlp(nets)
    classic = args.images if args.classic_images is None else args.classic_images
    measure("MNIST 784-128-10 MLP", net, x, 16, args.images, classic, args, build_root)
    if not args.no_cnn:
        net, x = fashion_cnn(nets)
        measure(f"Fashion-MNIST CNN {[layer.kind for layer in net.layers]}", net, x, 8,
                args.cnn_images, args.classic_cnn_images, args, build_root)
    print("\n(samples include the 2 edge samples; build s is 0 where a build is reused; "
          f"load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
