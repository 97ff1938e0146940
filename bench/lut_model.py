"""The fit planner's logic model (boards/fit.py LOGIC_FIT), measured: synthesize three
digits networks (64-64-10 and 64-48-32-10 MLPs, the digits CNN) on one board per family at
1, 4 and 16 lanes, read yosys' final `stat`, and fit LUT sites (LUT4, plus Gowin ALU and
ECP5 CCU2C·2 carry cells) minus the memories kept in logic by least squares on
``fixed + per layer + lanes·membrane bits (dense) + lanes·membrane bits (conv)``. Prints
each configuration's sites next to the planner's estimate and the fitted coefficients.

With ``--coding dense [--no-dsp]`` the same for the dense baseline: the ratio of its
per-lane LUT sites to the TTFS model's (boards/fit.py DENSE_LUTS).

Run: .venv/bin/python bench/lut_model.py [--out DIR] [--coding dense [--no-dsp]]
     (about 5 minutes on 2 cores)
"""

import argparse
import json
import re
import tempfile
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from onespike import zoo
from onespike.boards.build import synthesize
from onespike.boards.fit import LOGIC_FIT, LinkOptions, _core_luts
from onespike.boards.platforms import BOARDS
from onespike.ir import load, save
from onespike.mapper import convert

FAMILY_BOARDS = ["icebreaker", "tang-nano-9k", "ulx3s-85f"]
CARRY = {"ice40": (None, 0), "gowin": ("ALU", 1), "ecp5": ("CCU2C", 2)}


def networks(out):
    digits, images = zoo.digits(), zoo.digits(image=True, normalize=True)
    models = {"mlp-64-64-10": (zoo.mlp([64, 64, 10]), digits),
              "mlp-64-48-32-10": (zoo.mlp([64, 48, 32, 10]), digits),
              "digits-cnn": (zoo.digits_cnn(), images)}
    return {name: str(save(convert(zoo.train(model, data, epochs=5), data.x_train),
                           f"{out}/{name}.npz"))
            for name, (model, data) in models.items()}


def features(net, lanes):
    row = [1, 0, 0, 0]
    for layer, width, p in zip(net.layers, net.widths(), lanes):
        if hasattr(layer, "weight"):
            row[1] += 1
            row[3 if layer.kind == "conv" else 2] += p * width.membrane_bits
    return row


def one(job):
    name, path, board_name, lanes, out, link = job
    board, net = BOARDS[board_name], load(path)
    folder = f"{out}/{name}-{board_name}-{lanes}"
    try:
        result = synthesize(net, board, folder, lanes=lanes, link=link, log=lambda line: None)
    except Exception as e:                       # a configuration that does not fit
        return {"net": name, "board": board_name, "lanes": lanes, "refused": str(e)[:90]}
    text = open(f"{folder}/build/onespike.rpt").read()
    final = text[text.rfind(" cells\n"):]
    cells = {c: int(n) for n, c in re.findall(r"^\s+(\d+)\s+(\S+)\s*$", final, re.M)}
    cell, per = CARRY[board.family]
    placed, unit = result["fit"], board.distributed.luts_per_unit if board.distributed else 0
    memory_logic = placed.plan.logic_luts - placed.plan.lutram * unit
    sites = result["stat"]["luts"] + per * cells.get(cell, 0) - memory_logic
    fixed = _core_luts(net, [0] * len(placed.lanes), board.family)
    ttfs = _core_luts(net, placed.lanes, board.family) - fixed
    return {"net": name, "board": board_name, "family": board.family,
            "lanes": list(placed.lanes), "sites": sites, "estimate": placed.luts,
            "features": features(net, placed.lanes),
            "lane_ratio": round((sites - fixed) / ttfs, 2) if ttfs else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--coding", choices=("ttfs", "dense"), default="ttfs")
    parser.add_argument("--no-dsp", action="store_true", help="dense: no DSP blocks")
    args = parser.parse_args()
    link = LinkOptions(coding=args.coding, use_dsp=not args.no_dsp)
    out = args.out or tempfile.mkdtemp(prefix="lut-model-")
    paths = networks(out)
    jobs = [(n, p, b, lanes, out, link) for n, p in paths.items() for b in FAMILY_BOARDS
            for lanes in (1, 4, 16)]
    rows = []
    with ProcessPoolExecutor(2) as pool:
        for row in pool.map(one, jobs):
            print(json.dumps(row), flush=True)
            if "sites" in row:
                rows.append(row)
    for family in sorted({r["family"] for r in rows}):
        data = [r for r in rows if r["family"] == family]
        x = np.array([r["features"] for r in data], float)
        coef, *_ = np.linalg.lstsq(x, np.array([r["sites"] for r in data], float), rcond=None)
        print(f"{family}: fitted {np.round(coef, 1).tolist()}, in use {LOGIC_FIT[family]}")


if __name__ == "__main__":
    main()
