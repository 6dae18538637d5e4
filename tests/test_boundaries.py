"""The import rule: jobs → pipeline → model, never back; model/ imports only torch and numpy."""

import ast
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STDLIB = set(sys.stdlib_module_names)


def imports_of(package: str) -> dict[str, set[str]]:
    found = {}
    for path in (ROOT / package).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_model_imports_only_torch_numpy_and_stdlib():
    for path, names in imports_of("model").items():
        bad = names - STDLIB - {"torch", "numpy", "model", "__future__"}
        assert not bad, f"{path} imports {sorted(bad)}"


def test_pipeline_never_imports_jobs():
    for path, names in imports_of("pipeline").items():
        assert "jobs" not in names, f"{path} imports jobs"


def test_checker_sees_a_violation(tmp_path, monkeypatch):
    # The rule must be able to fail: plant a bad import and look again.
    bad = ROOT / "model" / "_planted_violation.py"
    bad.write_text("import ray\n")
    try:
        names = imports_of("model")["model/_planted_violation.py"]
        assert "ray" in names - STDLIB
    finally:
        bad.unlink()


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


# pipeline's sub-packages, each allowed to import only the layers below it (and itself).
LAYERS = {
    "core": set(),
    "audio": {"core"},
    "quality": {"core", "audio"},
    "inference": {"core", "audio", "quality"},
    "denoise": {"core", "audio", "quality", "inference"},
    "evaluate": {"core", "audio", "quality", "inference"},
    "train": {"core", "audio", "quality", "inference"},
    "reporting": {"core", "audio", "quality"},
}


def pipeline_layer_imports() -> dict[str, set[str]]:
    """For each module under pipeline/<layer>/, the pipeline layers it imports (every import, lazy ones too)."""
    found = {}
    for path in (ROOT / "pipeline").rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for module in modules:
                parts = module.split(".")
                if parts[0] == "pipeline" and len(parts) > 1:
                    names.add(parts[1])
            if isinstance(node, ast.ImportFrom) and node.module == "pipeline":  # from pipeline import core
                names |= {a.name for a in node.names}
        found[str(path.relative_to(ROOT))] = names
    return found


def test_pipeline_layers_import_only_downwards():
    modules = pipeline_layer_imports()
    assert set(LAYERS) == {p.name for p in (ROOT / "pipeline").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    for path, names in modules.items():
        parts = path.split("/")
        if len(parts) < 3:
            assert not names - {"assets"}, f"{path} sits above the layers and imports {sorted(names)}"
            continue
        layer = parts[1]
        bad = names - LAYERS[layer] - {layer}
        assert not bad, f"{path} ({layer}) imports {sorted(bad)}: only {sorted(LAYERS[layer])} lie below it"
    # One job's package never imports another's.
    jobs = {"denoise", "evaluate", "train", "reporting"}
    assert all(not (LAYERS[j] & jobs) for j in jobs)


def test_layer_checker_sees_an_upward_import():
    bad = ROOT / "pipeline" / "core" / "_planted_violation.py"
    bad.write_text("from pipeline.denoise.job import run_denoise\n")
    try:
        assert "denoise" in pipeline_layer_imports()["pipeline/core/_planted_violation.py"]
    finally:
        bad.unlink()
