"""The layering rules of the source tree, read from the code itself.

Dependencies point one way: ``mapper → ir``, ``hdl → ir``, ``sim → (ir, hdl)``,
``boards → (hdl, sim)``, ``cli → everything``; the golden model runs on numpy and the IR
alone; nothing but the command line (and the tests of the command line, for ``main``) imports
the CLI; functions stay short; no build output is tracked by git.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"onespike": ROOT / "onespike", "onespike.mapper": ROOT / "mapper",
            "onespike.sim": ROOT / "sim", "onespike.hdl": ROOT / "hdl",
            "onespike.boards": ROOT / "boards"}
# what each package may import from the project (besides itself, ir and errors)
ALLOWED = {
    "onespike.mapper": set(),
    "onespike.hdl": set(),
    "onespike.sim": {"onespike.hdl"},
    "onespike.boards": {"onespike.hdl", "onespike.sim"},
}
# the golden model and the trace checker: numpy, the standard library and the IR only
GOLDEN = ["golden", "check", "observed", "random_net", "rate"]
BASE = {"onespike.ir", "onespike.errors"}
LONGEST_FUNCTION = 80


def project_imports(path: Path) -> list:
    """``(line, module, names)`` for every import of an ``onespike`` module in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = node.module
            if node.level:     # relative: from .errors import …
                module = "onespike." + module
            found.append((node.lineno, module, tuple(a.name for a in node.names)))
    return found


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and ".".join(parts[:2]) in PACKAGES \
        else parts[0]


def sources(*folders):
    for folder in folders:
        yield from sorted(Path(folder).glob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_dependencies_point_one_way(package):
    allowed = ALLOWED[package] | BASE | {package}
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {module}"
             for path in sources(PACKAGES[package])
             for line, module, names in project_imports(path)
             if module.startswith("onespike") and not any(
                 module == a or module.startswith(a + ".") for a in allowed)
             and not (module == "onespike" and set(names) <= {"ir", "errors"})]
    assert not wrong, "\n".join(wrong)


def test_hdl_never_imports_torch_or_cocotb():
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {module}"
             for path in sources(PACKAGES["onespike.hdl"])
             for line, module, _ in project_imports(path)
             if module.split(".")[0] in ("torch", "cocotb", "cocotb_tools")]
    assert not wrong, "\n".join(wrong)


def test_golden_model_imports_only_numpy_and_the_ir():
    stdlib = set(sys.stdlib_module_names)
    wrong = []
    for name in GOLDEN:
        path = PACKAGES["onespike.sim"] / f"{name}.py"
        if not path.exists():
            continue
        for line, module, _ in project_imports(path):
            top = module.split(".")[0]
            ok = top in stdlib or top == "numpy" or module in BASE or module in {
                f"onespike.sim.{g}" for g in GOLDEN}
            if not ok:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not wrong, "\n".join(wrong)


def _runs_fresh(code):
    """``code`` prints ``ok`` in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT.parent)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_golden_model_runs_without_amaranth_or_cocotb():
    """Not only the imports we read: a fresh interpreter in which importing amaranth,
    cocotb or torch fails still runs the golden model and the checker."""
    code = (
        "import sys\n"
        "for name in ('amaranth', 'cocotb', 'cocotb_tools', 'torch', 'tqdm'):\n"
        "    sys.modules[name] = None\n"
        "import numpy as np\n"
        "from onespike.sim import closed_form, event_sim, first_mismatch, random_network, "
        "random_inputs\n"
        "from onespike.sim.observed import TapDecoder\n"
        "rng = np.random.default_rng(0)\n"
        "net = random_network(rng, conv=True)\n"
        "a0 = random_inputs(rng, net, 2)\n"
        "assert first_mismatch(net, closed_form(net, a0), event_sim(net, a0)) is None\n"
        "print('ok')\n")
    _runs_fresh(code)


def test_only_the_command_line_imports_the_cli():
    """Library, bench and test code call the library; tests of the command line may take
    ``main`` (and only ``main``) from it."""
    wrong = []
    for path in [*sources(*PACKAGES.values()), *sources(ROOT / "bench"),
                 *sources(ROOT / "tests")]:
        if path == PACKAGES["onespike"] / "cli.py":
            continue
        for line, module, names in project_imports(path):
            if module != "onespike.cli":
                continue
            if path.parent.name == "tests" and names == ("main",):
                continue
            wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module} {names}")
    assert not wrong, "\n".join(wrong)


def test_no_test_module_imports_another():
    tests = {p.stem for p in sources(ROOT / "tests")}
    wrong = [f"{path.name}:{line} imports {module}"
             for path in sources(ROOT / "tests")
             for line, module, _ in project_imports(path)
             if module in tests and module.startswith("test_")]
    assert not wrong, "\n".join(wrong)


def long_functions(path: Path) -> list:
    tree = ast.parse(path.read_text(), str(path))
    return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > LONGEST_FUNCTION]


def test_functions_are_short():
    wrong = [f"{path.relative_to(ROOT)}: {name} has {lines} lines"
             for folder in ("hdl", "sim", "boards")
             for path in sources(ROOT / folder)
             for name, lines in long_functions(path)]
    assert not wrong, "\n".join(wrong)


def test_no_build_outputs_are_tracked():
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    generated = (".v", ".ys", ".lpf", ".pcf", ".cst", ".il", ".bit", ".bin", ".asc", ".fs",
                 ".config", ".vcd", ".fst", ".pt2")
    wrong = [f for f in listed.stdout.splitlines() if f.endswith(generated)]
    assert not wrong, wrong


def test_the_package_offers_the_commands_python_forms_without_importing_torch():
    """``onespike.convert``, ``finetune``, ``plan``, ``generate``, ``verify``: the functions
    behind the commands, imported when first asked for (``import onespike`` stays light)."""
    code = (
        "import sys\n"
        "import onespike\n"
        "assert 'torch' not in sys.modules and 'amaranth' not in sys.modules\n"
        "from onespike.hdl.generate import generate, plan\n"
        "from onespike.sim.verify import verify\n"
        "assert (onespike.plan, onespike.generate, onespike.verify) == (plan, generate, verify)\n"
        "assert 'torch' not in sys.modules\n"
        "from onespike.mapper import convert, finetune\n"
        "assert (onespike.convert, onespike.finetune) == (convert, finetune)\n"
        "print('ok')\n")
    _runs_fresh(code)
