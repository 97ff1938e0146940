"""cocotb testbenches for the generated ``onespike_top``: stimulus, model, checker.

Run inside the simulator (Icarus or Verilator), started by :func:`onespike.sim.verify.verify`
through cocotb's Python runner; the environment variable ``ONESPIKE_VERIFY`` names its
configuration (JSON). Everything about the design — port names, payload fields, windows,
levels — is read back from the generator's ``manifest.json``; the expected behaviour comes
from the golden model, imported, never restated here.

Two benches, the same checks:

* :func:`harness_regression` (the default) runs the design inside the Verilog harness of
  :mod:`onespike.sim.harness`: cocotb loads the stimulus, sets the seed, idle and
  backpressure probabilities, the reset point and the cycle limit, starts the clock (in the
  simulator: cocotb's GPI clock) and sleeps until ``done``; the harness drives the streams
  and logs every tap transfer, which is decoded afterwards. Python wakes a few times per
  run, not every cycle.
* :func:`classic_regression` (``--bench classic``) does the same from Python on every clock
  cycle: drivers right after the rising edge, monitors in the read-only phase. Slower by
  an order of magnitude; kept as an independent second implementation of the drivers and
  monitors and as the reference of ``bench/verify_speed.py``.
"""

import dataclasses
import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import First, ReadOnly, RisingEdge, Timer

from onespike.ir import load
from onespike.sim.check import first_mismatch
from onespike.sim.golden import closed_form
from onespike.sim.harness import LOG, STIMULUS, handshake_names
from onespike.sim.observed import TapDecoder

CONFIG_ENV = "ONESPIKE_VERIFY"


def bit(handle) -> int:
    value = handle.value
    if not value.is_resolvable:
        raise AssertionError(f"{handle._name} is {value}")
    return int(value)


class Payload:
    """Decodes a packed payload with the field layout from the manifest. A field with
    ``X``/``Z`` bits decodes to ``None``, which fails the run (:func:`_defined`): every
    field of a valid transfer is defined, an end-of-step marker's index too (it is 0)."""

    def __init__(self, port):
        self.fields = port.get("fields", {})

    def decode(self, value, fields=None) -> dict:
        bits = value if isinstance(value, str) else str(value)[::-1]   # LSB first
        out = {}
        for name, f in (fields or self.fields).items():
            part = bits[f["offset"]:f["offset"] + f["width"]]
            if "fields" in f:          # a nested struct: an image neuron's {x, y, c}
                out[name] = self.decode(part, f["fields"])
                continue
            if set(part) - {"0", "1"}:
                out[name] = None
                continue
            number = int(part[::-1], 2) if part else 0
            if f["signed"] and number >> (f["width"] - 1):
                number -= 1 << f["width"]
            out[name] = number
        return out


def _defined(decoded: dict, where: str):
    """Every field of a valid transfer must be 0 or 1 in every bit, unused ones included
    (the index of an end-of-step marker is driven to 0)."""
    for name, value in decoded.items():
        if value is None or isinstance(value, dict) and None in value.values():
            raise AssertionError(f"{where}: field {name} is undefined (X) in a transfer")
    return decoded


class Output:
    """A testbench-driven signal that is written only when its value changes (each write
    is a simulator call, and most cycles change nothing)."""

    def __init__(self, handle):
        self.handle, self.last = handle, None

    def set(self, value: int):
        if value != self.last:
            self.handle.value = value
            self.last = value


class StreamSource:
    """Driver: sends values on ``<name>__valid/payload``, with random idle cycles."""

    def __init__(self, dut, name, values, idle, rng):
        self.valid = Output(getattr(dut, f"{name}__valid"))
        self.payload = Output(getattr(dut, f"{name}__payload"))
        self.ready = getattr(dut, f"{name}__ready")
        self.values, self.next, self.idle, self.rng = values, 0, idle, rng
        self.offered = False
        self.first_cycle = None            # cycle of the first transfer

    @property
    def done(self):
        return self.next >= len(self.values)

    def drive(self):
        self.offered = not self.done and not (self.idle and self.rng.random() < self.idle)
        self.valid.set(int(self.offered))
        if self.offered:
            self.payload.set(int(self.values[self.next]))

    def sample(self, cycle):
        if self.offered and bit(self.ready):
            self.next += 1
            if self.first_cycle is None:
                self.first_cycle = cycle


class StreamSink:
    """Driver of ``<name>__ready`` with random backpressure; keeps each transferred payload."""

    def __init__(self, dut, name, backpressure, rng):
        self.valid = getattr(dut, f"{name}__valid")
        self.payload = getattr(dut, f"{name}__payload")
        self.ready = Output(getattr(dut, f"{name}__ready"))
        self.backpressure, self.rng = backpressure, rng
        self.received, self.accepting = [], False

    def drive(self):
        self.accepting = not (self.backpressure and self.rng.random() < self.backpressure)
        self.ready.set(int(self.accepting))

    def sample(self, cycle):
        if self.accepting and bit(self.valid):
            self.received.append((cycle, int(self.payload.value)))


class TraceMonitor:
    """Monitor: decodes every tap (spike streams into each layer, the logits) with the shared
    :class:`~onespike.sim.observed.TapDecoder`; a valid transfer with an ``X`` bit fails."""

    def __init__(self, dut, manifest, samples):
        ports = {p["name"]: p for p in manifest["ports"]}
        self.taps = [(getattr(dut, f"tap_{n}__valid"), getattr(dut, f"tap_{n}__payload"),
                      Payload(ports[f"tap_{n}__payload"]))
                     for n in range(len(manifest["layers"]))]
        self.logit_tap = (dut.tap_logits__valid, dut.tap_logits__payload,
                          Payload(ports["tap_logits__payload"]))
        self.decoder = TapDecoder.for_manifest(manifest, samples)

    def sample(self, cycle=None):
        for n, (valid, payload, fields) in enumerate(self.taps):
            if bit(valid):
                p = _defined(fields.decode(payload.value), f"tap_{n}")
                self.decoder.transfer(n, p)
        valid, payload, fields = self.logit_tap
        if bit(valid):
            p = _defined(fields.decode(payload.value), "tap_logits")
            self.decoder.logit(p["index"], p["value"], p["last"])


def _config():
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise RuntimeError(f"{CONFIG_ENV} is not set: run this testbench through "
                           f"`onespike verify` or onespike.sim.verify.verify()")
    return json.loads(Path(path).read_text())


async def _cycle(dut, drivers, monitors, cycle):
    await RisingEdge(dut.clk)
    for d in drivers:
        d.drive()
    await ReadOnly()
    for m in monitors:
        m(cycle)


async def _reset(dut, cycles=2):
    dut.rst.value = 1
    dut.i__valid.value = 0
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


@cocotb.test()
async def classic_regression(dut):
    """Streams the samples through the design from Python, cycle by cycle, and checks every
    layer's spike times, the logits and the classes against the golden model."""
    config = _config()
    manifest = json.loads(Path(config["manifest"]).read_text())
    net = load(config["net"])
    stimulus = np.load(config["inputs"], allow_pickle=False)
    a0, junk = stimulus["a0"], stimulus["junk"]
    samples = len(a0)
    rng = np.random.default_rng(config["seed"])
    out = Path(config["out"])
    progress = out / "progress"

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await _reset(dut)
    cycle = 0
    if config["interrupt_cycles"]:        # a sample stream cut short by a reset
        source = StreamSource(dut, "i", junk.reshape(-1), 0.0, rng)
        sink = StreamSink(dut, "o", 0.0, rng)
        for _ in range(config["interrupt_cycles"]):
            await _cycle(dut, [source, sink], [source.sample], cycle)
            cycle += 1
        await RisingEdge(dut.clk)
        await _reset(dut, 1)

    source = StreamSource(dut, "i", a0.reshape(-1), config["idle"], rng)
    sink = StreamSink(dut, "o", config["backpressure"], rng)
    monitor = TraceMonitor(dut, manifest, samples)
    limit = config["max_cycles"]
    start, reported = cycle, 0
    drivers, monitors = [source, sink], [source.sample, sink.sample, monitor.sample]
    while len(sink.received) < samples:
        await _cycle(dut, drivers, monitors, cycle)
        cycle += 1
        if len(sink.received) != reported:
            reported = len(sink.received)
            progress.write_text(str(reported))
        assert cycle - start < limit, (
            f"only {len(sink.received)} of {samples} results after {limit} cycles: the design "
            f"hangs (or --max-cycles is too small)")
    for _ in range(8):                     # nothing may follow the last result
        await _cycle(dut, drivers, [monitor.sample], cycle)
        cycle += 1
    progress.write_text(str(samples))

    _check(config, net, a0, monitor.decoder, [v for _, v in sink.received],
           [c for c, _ in sink.received], source.first_cycle or 0)


def _check(config, net, a0, decoder, classes, done, first_input):
    """Model and checker: the golden model on the same samples, every layer compared;
    the observed trace is saved for :func:`onespike.sim.verify.verify`'s summary."""
    out = Path(config["out"])
    golden = closed_form(net, a0)
    observed = decoder.trace(classes[:len(a0)])
    np.savez(out / "observed.npz", classes=observed.classes, logits=observed.logits,
             done=np.array(done[:len(a0)]), first_input=first_input,
             **{f"times{n}": t for n, t in enumerate(observed.times)})
    extra = decoder.extra + [f"o: class {c}" for c in classes[len(a0):]]
    assert not extra, f"transfers after the last sample: {extra[:3]}"
    mismatch = first_mismatch(net, golden, observed)
    first = config.get("first_sample", 0)         # a shard's samples count from there
    if mismatch is not None and first:
        mismatch = dataclasses.replace(mismatch, sample=mismatch.sample + first)
    assert mismatch is None, f"first mismatch: {mismatch}"
    assert np.array_equal(observed.classes, golden.classes), (
        f"classes differ at sample "
        f"{first + int(np.argmax(observed.classes != golden.classes))}")


class Fields:
    """Decodes a tap payload from its binary text in the harness log (MSB first) into
    ``index`` (a number, or ``{x, y, c}``) and the other fields; a field with an ``X`` bit
    fails with the field's name (through :class:`Payload`)."""

    def __init__(self, port, where, shape=None):
        self.payload, self.where, self.shape = Payload(port), where, shape
        self.fields = port.get("fields", {})

    @staticmethod
    def _value(number, f):
        value = (number >> f["offset"]) & ((1 << f["width"]) - 1)
        if f["signed"] and f["width"]:          # minus the sign bit's weight, twice
            value = value - ((value >> (f["width"] - 1)) << f["width"])
        return value

    def __call__(self, bits: str) -> dict:
        if "x" in bits or "z" in bits:
            _defined(self.payload.decode(bits[::-1]), self.where)     # raises
        number, out = int(bits, 2), {}
        for name, f in self.fields.items():
            if "fields" in f:
                inner = self._value(number, {**f, "signed": False})
                out[name] = {k: self._value(inner, g) for k, g in f["fields"].items()}
            else:
                out[name] = self._value(number, f)
        return out


    def columns(self, bits: list) -> dict:
        """:meth:`__call__` for many payloads at once (each ``0``/``1`` only): one numpy
        array per field, ``index`` flattened to the neuron's C-order number."""
        wide = max((f["offset"] + f["width"] for f in self.fields.values()), default=0) > 62
        numbers = np.array([int(b, 2) for b in bits], dtype=object if wide else np.int64)
        out = {name: self._value(numbers, f) for name, f in self.fields.items()
               if "fields" not in f}
        index = self.fields["index"]
        if "fields" in index:        # an image neuron {x, y, c} of a (C, H, W) map
            inner = self._value(numbers, {**index, "signed": False})
            xyz = {k: self._value(inner, g).astype(np.int64) for k, g in index["fields"].items()}
            out["index"] = (xyz["c"] * self.shape[1] + xyz["y"]) * self.shape[2] + xyz["x"]
        return {name: np.asarray(v, dtype=np.int64) for name, v in out.items()}


def read_log(path, manifest, samples):
    """Decode the harness log: returns ``(decoder, classes, done cycles, first input cycle)``;
    an ``X`` on a handshake or in a valid transfer fails. A log with no ``X`` anywhere is
    decoded in blocks, one numpy pass per stream; any other line by line."""
    text = Path(path).read_text()
    if "x" in text or "z" in text or "X " in text:
        return _read_log_lines(text.splitlines(), manifest, samples)
    ports = {p["name"]: p for p in manifest["ports"]}
    layers = manifest["layers"]
    decoder = TapDecoder.for_manifest(manifest, samples)
    lines = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        lines.setdefault(kind, []).append(rest)
    for n, layer in enumerate(layers):
        if str(n) not in lines:
            continue
        f = Fields(ports[f"tap_{n}__payload"], f"tap_{n}", layer["in_shape"])
        if "step" not in f.fields:                 # the dense coding: one call each
            for bits in lines[str(n)]:
                decoder.transfer(n, f(bits))
            continue
        c = f.columns(lines[str(n)])
        decoder.spikes(n, c["index"], c["step"], c["end"].astype(bool))
    if "L" in lines:
        c = Fields(ports["tap_logits__payload"], "tap_logits").columns(lines["L"])
        decoder.logit_block(c["index"], c["value"], c["last"].astype(bool))
    outputs = [rest.split() for rest in lines.get("O", [])]
    first_input = int(lines["I"][0]) if "I" in lines else 0
    return (decoder, [int(bits, 2) for _, bits in outputs], [int(c) for c, _ in outputs],
            first_input)


def _read_log_lines(lines, manifest, samples):
    ports = {p["name"]: p for p in manifest["ports"]}
    fields = {str(n): Fields(ports[f"tap_{n}__payload"], f"tap_{n}")
              for n in range(len(manifest["layers"]))}
    logits = Fields(ports["tap_logits__payload"], "tap_logits")
    decoder = TapDecoder.for_manifest(manifest, samples)
    classes, done, first_input = [], [], 0
    for line in lines:
        kind, *rest = line.split()
        if kind == "L":
            p = logits(rest[0])
            decoder.logit(p["index"], p["value"], p["last"])
        elif kind == "O":
            if set(rest[1]) - {"0", "1"}:
                raise AssertionError(f"o__payload is {rest[1]} in a transfer")
            done.append(int(rest[0]))
            classes.append(int(rest[1], 2))
        elif kind == "I":
            first_input = int(rest[0])
        elif kind == "X":
            bad = [f"{name}={b}" for name, b in zip(handshake_names(manifest), rest[1])
                   if b not in "01"]
            raise AssertionError(f"X on a handshake at cycle {rest[0]}: {', '.join(bad)}")
        else:
            p = fields[kind](rest[0])
            decoder.transfer(int(kind), p)
    return decoder, classes, done, first_input


POLL_CYCLES = 50_000        # cycles between progress reports


async def _run_harness(dut, config, words, junk, samples):
    """Set the harness' inputs, load the stimulus, reset, and sleep until ``done`` (waking
    every :data:`POLL_CYCLES` cycles for the progress file). The clock runs in the
    simulator, made by the harness."""
    out = Path(config["out"])
    (out / STIMULUS).write_text("\n".join(map("{:x}".format, np.concatenate([words, junk])))
                                + "\n")
    settings = {"words": len(words), "junk_words": len(junk), "samples": samples,
                "reset_after": config["interrupt_cycles"], "max_cycles": config["max_cycles"],
                "seed": config["seed"] & 0xFFFFFFFF,
                "idle_thr": round(config["idle"] * 65536),
                "bp_thr": round(config["backpressure"] * 65536)}
    for name, value in settings.items():
        getattr(dut, name).value = value
    dut.rst.value, dut.load.value = 1, 0      # the harness makes the clock: edges at 5, 15, …
    await Timer(1, unit="ns")
    dut.load.value = 1
    await Timer(20, unit="ns")               # two rising edges in reset
    dut.rst.value = 0
    progress = out / "progress"
    while True:
        await First(RisingEdge(dut.done), Timer(POLL_CYCLES * 10, unit="ns"))
        await ReadOnly()                    # every output of this step settled
        if dut.done.value.is_resolvable and int(dut.done.value):
            break
        progress.write_text(str(int(dut.results.value)))
    progress.write_text(str(int(dut.results.value)))
    return bool(int(dut.hang.value)), int(dut.results.value)


@cocotb.test()
async def harness_regression(dut):
    """Streams the samples through the design inside the harness and checks every layer's
    spike times, the logits and the classes against the golden model."""
    config = _config()
    manifest = json.loads(Path(config["manifest"]).read_text())
    net = load(config["net"])
    stimulus = np.load(config["inputs"], allow_pickle=False)
    a0 = stimulus["a0"]
    junk = stimulus["junk"].reshape(-1)[:config["interrupt_cycles"]]
    start = time.perf_counter()
    hang, results = await _run_harness(dut, config, a0.reshape(-1), junk, len(a0))
    simulated = time.perf_counter()
    decoder, classes, done, first_input = read_log(Path(config["out"]) / LOG, manifest,
                                                   len(a0))
    dut._log.info(f"{int(dut.cycle.value)} cycles simulated in {simulated - start:.2f} s, "
                  f"log decoded in {time.perf_counter() - simulated:.2f} s")
    assert not hang, (
        f"only {results} of {len(a0)} results after {config['max_cycles']} cycles: the "
        f"design hangs (or --max-cycles is too small)")
    _check(config, net, a0, decoder, classes, done, first_input)
