"""Validation quality against CPU-seconds of training, one curve per recipe.

Quality per CPU-second is how recipes are compared here (issue 19): a recipe that
learns more per CPU-second wins, whatever its per-step figures. Every training's
``last.pt`` carries ``metadata.history``: one entry per validation with the run's
cumulative ``cpu_seconds``, ``audio_seconds``, ``step`` and ``val`` scores (PESQ-WB,
SI-SDR, STOI where the recipe validates it). This script reads those histories
(or JSON files holding a list of such entries) and draws PESQ-WB, SI-SDR and STOI
against CPU-hours, plus a markdown table of each curve's best point.

    python bench/quality_curves.py --run aigd=/work/runs/train/aigd/last.pt \\
        --run diffgmm-banded=/work/runs/train/banded/last.pt \\
        --png docs/bench/quality_per_cpu_hour.png --json docs/bench/quality_per_cpu_hour.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METRICS = (("pesq_wb", "PESQ-WB"), ("si_sdr_db", "SI-SDR (dB)"), ("stoi", "STOI"))


def load_history(path: str) -> list[dict]:
    """The validation history of one run: from a checkpoint's metadata or a JSON list."""
    if path.endswith(".json") or path.endswith(".jsonl"):
        text = Path(path).read_text()
        return json.loads(text) if path.endswith(".json") else [json.loads(line) for line in text.splitlines() if line]
    from pipeline.core.checkpoints import load_checkpoint_dict
    from pipeline.core.storage import StorageConfig

    ckpt = load_checkpoint_dict(path, StorageConfig())[0]
    history = ckpt.get("metadata", {}).get("history")
    if not history:
        raise SystemExit(f"{path}: no metadata.history (trained before validation histories were recorded)")
    return list(history)


def best_points(runs: dict[str, list[dict]]) -> list[dict]:
    """Per run: the entry with the best validation PESQ-WB, with its CPU-hours."""
    rows = []
    for name, history in runs.items():
        best = max(history, key=lambda e: e["val"]["pesq_wb"])
        rows.append(
            {
                "run": name,
                "step": best["step"],
                "cpu_hours": best["cpu_seconds"] / 3600.0,
                "audio_hours": best.get("audio_seconds", 0.0) / 3600.0,
                **best["val"],
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| run | step | CPU-h | audio-h | PESQ-WB | SI-SDR dB | STOI |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        stoi = f"{r['stoi']:.3f}" if "stoi" in r else "–"
        lines.append(
            f"| {r['run']} | {r['step']} | {r['cpu_hours']:.2f} | {r['audio_hours']:.1f} | "
            f"{r['pesq_wb']:.3f} | {r['si_sdr_db']:.2f} | {stoi} |"
        )
    return "\n".join(lines)


def plot(runs: dict[str, list[dict]], png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 3.4), constrained_layout=True)
    for ax, (key, label) in zip(axes, METRICS):
        for name, history in runs.items():
            points = [(e["cpu_seconds"] / 3600.0, e["val"][key]) for e in history if key in e["val"]]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=name)
        inputs = [e["val"].get(f"input_{key}") for h in runs.values() for e in h[:1]]
        if inputs and inputs[0] is not None:
            ax.axhline(inputs[0], color="grey", linestyle=":", linewidth=1, label="noisy input")
        ax.set_xlabel("training CPU-hours")
        ax.set_ylabel(f"validation {label}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.savefig(png, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--run",
        action="append",
        required=True,
        metavar="NAME=PATH",
        help="a curve: a last.pt (its metadata.history) or a JSON list of history entries",
    )
    parser.add_argument("--png", help="write the figure here")
    parser.add_argument("--json", help="write the histories and best points here")
    args = parser.parse_args(argv)
    runs = {}
    for item in args.run:
        name, sep, path = item.partition("=")
        if not sep:
            parser.error(f"--run {item!r}: expected NAME=PATH")
        runs[name] = sorted(load_history(path), key=lambda e: e["cpu_seconds"])
    rows = best_points(runs)
    print(markdown(rows))
    if args.png:
        plot(runs, args.png)
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "best": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
