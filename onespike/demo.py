"""``onespike demo``: the whole flow on built-in data, in about two minutes.

Train a digits MLP, convert it, run the golden model, generate the Verilog, prove it spike for
spike against the golden model on a real simulator, and write the report; ``board`` adds a
bitstream and its numbers to the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["run_demo", "run_rnn_demo", "train_digits_rnn"]


def run_demo(out: Path = Path("build/demo"), *, act_bits=4, weight_bits=8, lanes=8,
             simulator="icarus", rtl_samples=50, board=None, progress=True):
    """The main job on built-in data; returns ``(summary dict, report lines)``."""
    import torch

    from onespike import zoo
    from onespike.hdl.generate import generate
    from onespike.ir import save
    from onespike.mapper import check_bits, convert_exported
    from onespike.report import write_report
    from onespike.sim.evaluate import evaluate
    from onespike.sim.verify import EDGE_SAMPLES, stimulus, verify

    check_bits(act_bits, weight_bits)
    out.mkdir(parents=True, exist_ok=True)
    say = print if progress else (lambda *_: None)
    data = zoo.digits()
    say("1/5 training a 64-64-10 MLP on scikit-learn's digits")
    model = zoo.train(zoo.mlp([64, 64, 10]), data, progress=progress)
    float_acc = zoo.float_accuracy(model, data.x_test, data.y_test)
    model_path = out / "digits_mlp.pt2"
    torch.export.save(torch.export.export(model, (torch.as_tensor(data.x_train[:1]),)),
                      model_path)
    for name, array in (("calib", data.x_train), ("test_x", data.x_test),
                        ("test_y", data.y_test)):
        np.save(out / f"{name}.npy", array)
    say("2/5 converting to an integer TTFS network and running the golden model")
    net = convert_exported(model_path, data.x_train, act_bits=act_bits,
                           weight_bits=weight_bits)
    net_path = save(net, out / "digits_mlp.npz")
    quant, _ = evaluate(net, data.x_test, data.y_test, mode="closed", progress=False)
    spiking, _ = evaluate(net, data.x_test, data.y_test, mode="event", progress=progress)
    say(f"3/5 generating the Verilog and verifying {rtl_samples} samples on {simulator}")
    rtl = out / "rtl"
    generate(net, rtl, lanes=lanes)
    checked = verify(net, stimulus(net, data.x_test, rtl_samples), rtl=rtl,
                     simulator=simulator, build_root=out / "verify", progress=progress)
    builds = []
    if board is not None:
        say(f"4/5 building a bitstream for {board.name}")
        from onespike.boards.build import build
        build(net_path, board, out / f"bit-{board.name}", lanes=None, log=say)
        builds.append(out / f"bit-{board.name}")
    say("5/5 writing the report")
    report = write_report(net, out / "report", x=data.x_test, labels=data.y_test,
                          float_accuracy=float_acc, lanes=lanes, build_dirs=builds,
                          title="onespike demo: a digits MLP")
    result = {"dataset": "digits", "test_samples": int(len(data.y_test)),
              "act_bits": act_bits, "weight_bits": weight_bits,
              "float_accuracy": float_acc, "quantized_accuracy": quant["accuracy"],
              "spiking_accuracy": spiking["accuracy"],
              "spikes_per_neuron": spiking["spikes_per_neuron"],
              "synaptic_ops_per_inference": spiking["synaptic_ops_per_inference"],
              "latency_steps": net.latency_steps, "net": str(net_path),
              "model": str(model_path), "rtl": str(rtl), "simulator": simulator,
              "rtl_samples": checked["samples"] - EDGE_SAMPLES,
              "rtl_values_compared": checked["values_compared"],
              "rtl_mismatches": checked["mismatches"],
              "cycles_per_inference": checked["cycles_per_inference"],
              "report": report["report"], "builds": [str(b) for b in builds]}
    lines = [
        f"digits 64-64-10 MLP, {len(data.y_test)} test images, "
        f"act_bits {act_bits}, weight_bits {weight_bits}",
        f"  float      accuracy {float_acc:.4f}",
        f"  quantized  accuracy {quant['accuracy']:.4f}   (closed form, integer)",
        f"  spiking    accuracy {spiking['accuracy']:.4f}   (event simulation, "
        f"{spiking['spikes_per_neuron']:.2f} spikes/neuron, "
        f"{net.latency_steps} time steps)",
        f"  RTL        {result['rtl_samples']} test images + {EDGE_SAMPLES} edge cases on "
        f"{simulator}: {checked['values_compared']:,} spike times, logits and classes "
        f"compared, {checked['mismatches']} mismatches",
        f"  report     {report['report']}",
        f"  next: onespike verify {net_path} --rtl {rtl} --sim verilator --inputs "
        f"{out / 'test_x.npy'}",
    ]
    return result, lines


def train_digits_rnn(*, act_bits=4, hidden=32, epochs=(20, 30)):
    """``(model, data)``: :func:`onespike.zoo.row_rnn` on scikit-learn's digits read row by
    row (8 steps of 8 pixels in 0..1), ``epochs[0]`` in float, then ``epochs[1]`` on the
    ``act_bits`` grid the integer network will use."""
    import torch

    from onespike import zoo

    flat = zoo.digits()
    data = zoo.Dataset("digits-rows", flat.x_train.reshape(-1, 8, 8) / 16.0, flat.y_train,
                       flat.x_test.reshape(-1, 8, 8) / 16.0, flat.y_test)
    torch.manual_seed(0)
    model = zoo.row_rnn(8, hidden, 10)
    zoo.train(model, data, epochs=epochs[0], batch=32, lr=3e-3, clip=1.0)
    model.bits = act_bits
    model = zoo.train(model, data, epochs=epochs[1], batch=32, lr=1e-3, clip=1.0, seed=1)
    model.bits = None
    return model, data


def run_rnn_demo(out: Path = Path("build/demo-rnn"), *, act_bits=4, weight_bits=8,
                 hidden=32, epochs=(20, 30), lanes=4, simulator="icarus", rtl_samples=20,
                 progress=True):
    """A ReLU RNN reading scikit-learn's digits row by row (8 steps of 8 pixels), trained
    on the integer network's grid, converted, run as a spiking network, and its Verilog
    checked against the golden model at every sequence step on ``rtl_samples`` test
    sequences; returns ``(summary dict, report lines)``. Nothing downloads; about a minute
    on one core."""
    from onespike import zoo
    from onespike.hdl.generate import generate
    from onespike.ir import save
    from onespike.mapper import check_bits, convert
    from onespike.sim.evaluate import evaluate
    from onespike.sim.rate import rate_summary
    from onespike.sim.verify import EDGE_SAMPLES, stimulus, verify

    check_bits(act_bits, weight_bits)
    out.mkdir(parents=True, exist_ok=True)
    say = print if progress else (lambda *_: None)
    say(f"1/4 training a ReLU RNN (8 rows of 8 pixels, {hidden} hidden) on the "
        f"{act_bits}-bit grid")
    model, data = train_digits_rnn(act_bits=act_bits, hidden=hidden, epochs=epochs)
    float_acc = zoo.float_accuracy(model, data.x_test, data.y_test)
    say("2/4 converting to an integer TTFS network over the sequence")
    net = convert(model, data.x_train, act_bits=act_bits, weight_bits=weight_bits)
    net_path = save(net, out / "digits_rnn.npz")
    for name, array in (("calib", data.x_train), ("test_x", data.x_test),
                        ("test_y", data.y_test)):
        np.save(out / f"{name}.npy", array)
    say("3/4 running the golden model (closed form, event simulation) and rate coding")
    quant, _ = evaluate(net, data.x_test, data.y_test, mode="closed", progress=False)
    spiking, _ = evaluate(net, data.x_test, data.y_test, mode="event", progress=False)
    rate, _ = rate_summary(net, data.x_test, data.y_test, steps=net.layers[0].levels,
                           bipolar=True)
    say(f"4/4 generating the Verilog and verifying {rtl_samples} test sequences on "
        f"{simulator}, every layer at every step")
    rtl = out / "rtl"
    generate(net, rtl, lanes=lanes)
    checked = verify(net, stimulus(net, data.x_test, rtl_samples), rtl=rtl,
                     simulator=simulator, build_root=out / "verify", progress=progress)
    result = {"dataset": "digits rows", "steps": net.steps, "hidden": hidden,
              "test_samples": int(len(data.y_test)), "act_bits": act_bits,
              "weight_bits": weight_bits, "float_accuracy": float_acc,
              "quantized_accuracy": quant["accuracy"], "spiking_accuracy": spiking["accuracy"],
              "spikes_per_inference": spiking["spikes_per_inference"],
              "rate_bipolar_accuracy": rate["accuracy"],
              "rate_bipolar_spikes_per_inference": rate["spikes_per_inference"],
              "rate_bipolar_steps_per_window": rate["total_steps"],
              "latency_steps": net.latency_steps, "net": str(net_path), "rtl": str(rtl),
              "simulator": simulator, "rtl_samples": checked["samples"] - EDGE_SAMPLES,
              "rtl_values_compared": checked["values_compared"],
              "rtl_mismatches": checked["mismatches"],
              "cycles_per_sequence": checked["cycles_per_inference"]}
    lines = [
        f"digits row by row: ReLU RNN 8-{hidden}-10 over {net.steps} steps, "
        f"{len(data.y_test)} test sequences, act_bits {act_bits}, weight_bits {weight_bits}",
        f"  float      accuracy {float_acc:.4f}",
        f"  quantized  accuracy {quant['accuracy']:.4f}   (closed form, integer)",
        f"  spiking    accuracy {spiking['accuracy']:.4f}   (event simulation, "
        f"{spiking['spikes_per_inference']:.1f} spikes per sequence)",
        f"  rate       accuracy {rate['accuracy']:.4f}   (bipolar, T = {rate['steps']}, "
        f"{rate['total_steps']} steps per window, {rate['spikes_per_inference']:.1f} spikes "
        f"per sequence{', exact' if rate['guaranteed_exact'] else ''})",
        f"  RTL        {result['rtl_samples']} test sequences + {EDGE_SAMPLES} edge cases on "
        f"{simulator}: {checked['values_compared']:,} spike times (every layer, every step), "
        f"logits and classes compared, {checked['mismatches']} mismatches, "
        f"{checked['cycles_per_inference']:,.0f} cycles per sequence",
        f"  next: onespike verify {net_path} --rtl {rtl} --sim verilator --inputs "
        f"{out / 'test_x.npy'}",
    ]
    return result, lines
