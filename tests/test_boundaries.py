"""What the import-linter contracts (pyproject.toml, `make lint`) cannot say.

The layers (jobs → pipeline → model; inside pipeline core < audio < quality < inference < the job
packages), the independence of the job packages and of the job entry points, and the absence of
import cycles are import-linter contracts. Left here: model/ may import *only* torch, numpy and the
standard library (an allow-list, where import-linter forbids by name), and ``diffgmm --help``
imports nothing heavy.
"""

import ast
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STDLIB = set(sys.stdlib_module_names)
MODEL_ALLOWED = {"torch", "numpy", "model", "__future__"}


def top_level_imports(package_dir: Path) -> dict[str, set[str]]:
    """For each .py file under ``package_dir``: the top-level names it imports (lazy imports too)."""
    found = {}
    for path in package_dir.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(package_dir.parent))] = names
    return found


def disallowed(package_dir: Path, allowed: set[str]) -> dict[str, list[str]]:
    return {p: sorted(bad) for p, names in top_level_imports(package_dir).items() if (bad := names - STDLIB - allowed)}


def test_model_imports_only_torch_numpy_and_stdlib():
    assert disallowed(ROOT / "model", MODEL_ALLOWED) == {}


def test_the_allow_list_check_sees_a_third_party_import(tmp_path):
    # A copy of the rule's input with one bad file, outside the source tree.
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "fine.py").write_text("import math\nimport torch\nfrom model import registry\n")
    (tmp_path / "model" / "bad.py").write_text("def f():\n    import scipy.signal\n")
    assert disallowed(tmp_path / "model", MODEL_ALLOWED) == {"model/bad.py": ["scipy"]}


def test_help_is_instant_and_imports_nothing_heavy():
    code = (
        "import sys, time; t=time.perf_counter(); from jobs.cli import build_parser; build_parser().format_help();"
        "print(time.perf_counter()-t); print(','.join(m for m in ('torch','ray','pyarrow','pandas') if m in sys.modules))"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    elapsed, heavy = out.stdout.splitlines()[0], out.stdout.splitlines()[1:]
    assert heavy in ([], [""]), f"--help imported {heavy}"
    assert float(elapsed) < 0.5
    assert time.perf_counter() - start < 10
