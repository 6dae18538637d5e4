"""The evaluation job: paired clean/noisy corpora → one row per (clip, model) with every metric.

Pairs come from two prefixes with matching relative keys (VoiceBank+DEMAND
style) or from a manifest (CSV or Parquet with ``clean_uri`` and ``noisy_uri``
columns). Each neural model (a shipped one by name or a checkpoint) runs in its
own stage of model actors; the baselines and all metrics run in CPU tasks, so PESQ never serialises the job. Unpaired files get rows with
``status="error"`` and ``error="unpaired: …"``.

Outputs under ``<output>/runs/<run_id>/``: ``clips/part-*.parquet``
(:data:`pipeline.core.schema.EVAL_SCHEMA`), ``summary.json`` and ``_COMMITTED.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.audio.codec import load_mono
from pipeline.core import schema as S
from pipeline.core import storage
from pipeline.core.checkpoints import SHIPPED_CHECKPOINTS
from pipeline.core.config import to_dict
from pipeline.core.lifecycle import RunLifecycle
from pipeline.core.progress import Progress, quiet_ray_data
from pipeline.core.runs import default_run_id, init_ray, split_blocks
from pipeline.inference.actors import ActorConfig, map_model
from pipeline.inference.model_stage import ModelStageConfig
from pipeline.inference.rows import AUDIO, AUDIO_CHANNELS, ENHANCED_AUDIO, error_text, pack_audio, unpack_audio
from pipeline.quality.baselines import BASELINES
from pipeline.quality.dnsmos import DNSMOSConfig, dnsmos_columns
from pipeline.quality.metrics import DNSMOS, METRIC_NAMES, check_metric_names, join_errors, score_all

log = logging.getLogger(__name__)

DIFFGMM = "diffgmm"
CLEAN_URI, NOISY_URI, REFERENCE = "clean_uri", "noisy_uri", "reference"

PAIR_SCHEMA = pa.schema(
    [
        pa.field(S.CLEAN_KEY, pa.string()),
        pa.field(S.NOISY_KEY, pa.string()),
        pa.field(CLEAN_URI, pa.string()),
        pa.field(NOISY_URI, pa.string()),
        pa.field(S.STATUS, pa.string()),
        pa.field(S.ERROR, pa.string()),
    ]
)
LOADED_SCHEMA = pa.schema(
    list(PAIR_SCHEMA)
    + [
        pa.field(S.DURATION_SECONDS, pa.float64()),
        pa.field(AUDIO, pa.large_binary()),
        pa.field(AUDIO_CHANNELS, pa.int32()),
        pa.field(REFERENCE, pa.large_binary()),
    ]
)


@dataclass(frozen=True)
class EvaluateConfig:
    output_uri: str = ""
    clean_uri: str | None = None
    noisy_uri: str | None = None
    pairs_uri: str | None = None
    run_id: str | None = None
    models: tuple[str, ...] = (DIFFGMM, "noisy", "spectral_gating")
    metrics: tuple[str, ...] = METRIC_NAMES
    sample_rate: int = 16000
    extensions: tuple[str, ...] = (".wav", ".flac", ".ogg")
    rows_per_block: int = 4
    cpu_batch_size: int = 1
    cpus_per_cpu_task: float = 0.5
    # Without a terminal, a progress line at most this often (pipeline/core/progress.py).
    progress_seconds: float = 30.0
    ray_address: str | None = None
    storage: storage.StorageConfig = field(default_factory=storage.StorageConfig)
    model: ModelStageConfig = field(default_factory=ModelStageConfig)
    actors: ActorConfig = field(default_factory=ActorConfig)
    # Used when ``metrics`` lists "dnsmos" (no-reference DNSMOS of input and every output).
    dnsmos: DNSMOSConfig = field(default_factory=DNSMOSConfig)

    def __post_init__(self) -> None:
        if not self.output_uri:
            raise ValueError("output_uri is required")
        self.actors.check_cpu_share(self.cpus_per_cpu_task)
        if not self.progress_seconds > 0:
            raise ValueError(f"progress_seconds must be > 0, got {self.progress_seconds}")
        if not self.pairs_uri and not (self.clean_uri and self.noisy_uri):
            raise ValueError("give clean_uri and noisy_uri, or pairs_uri")
        labels = [m.split("=", 1)[0] for m in self.models]
        if len(set(labels)) != len(labels):
            raise ValueError(f"models: each name must appear once, got {list(self.models)}")
        unknown = [m for m in self.models if "=" not in m and m not in BASELINES and m not in SHIPPED_CHECKPOINTS]
        if unknown:
            raise ValueError(
                f"unknown models {unknown}; known: {[*SHIPPED_CHECKPOINTS, *BASELINES]}, or LABEL=CHECKPOINT for any checkpoint"
            )
        check_metric_names(self.metrics, "metrics")


def neural_models(config: EvaluateConfig) -> dict[str, str]:
    """Label → checkpoint of every neural entry of ``models``, in order.

    A shipped family's name (``diffgmm``, ``aigd``) means its shipped
    checkpoint, ``LABEL=URI`` any checkpoint. ``model.checkpoint_uri``
    (``--checkpoint``) replaces the checkpoint of the entry named like the
    family it holds (that entry is read when the model loads).
    """
    out = {}
    for entry in config.models:
        label, _, uri = entry.partition("=")
        if uri:
            out[label] = uri
        elif label in SHIPPED_CHECKPOINTS:
            out[label] = SHIPPED_CHECKPOINTS[label]
    return out


def model_columns(label: str) -> tuple[str, str]:
    """(column prefix, enhanced-audio column) of a neural model's stage in the evaluation dataset."""
    return f"{label}:", f"{label}:{ENHANCED_AUDIO}"


def pair_table(config: EvaluateConfig) -> pa.Table:
    """Every clean and noisy file once: matched pairs ok, the rest as unpaired errors."""
    from pipeline.core.manifest import list_inputs

    rows = []
    if config.pairs_uri:
        for r in read_pairs_manifest(config.pairs_uri, config.storage):
            rows.append(
                {S.CLEAN_KEY: r[CLEAN_URI], S.NOISY_KEY: r[NOISY_URI], CLEAN_URI: r[CLEAN_URI], NOISY_URI: r[NOISY_URI]}
            )
    else:
        clean = set(list_inputs(config.clean_uri, config.extensions, config.storage).column(S.KEY).to_pylist())
        noisy = set(list_inputs(config.noisy_uri, config.extensions, config.storage).column(S.KEY).to_pylist())
        for key in sorted(clean | noisy):
            rows.append(
                {
                    S.CLEAN_KEY: key if key in clean else None,
                    S.NOISY_KEY: key if key in noisy else None,
                    CLEAN_URI: storage.join(config.clean_uri, key) if key in clean else None,
                    NOISY_URI: storage.join(config.noisy_uri, key) if key in noisy else None,
                }
            )
    for r in rows:
        missing = "clean" if r[CLEAN_URI] is None else "noisy" if r[NOISY_URI] is None else None
        r[S.STATUS] = S.STATUS_ERROR if missing else S.STATUS_OK
        r[S.ERROR] = f"unpaired: no {missing} file with this key" if missing else None
    return pa.Table.from_pylist(rows, schema=PAIR_SCHEMA)


def read_pairs_manifest(uri: str, config: storage.StorageConfig) -> list[dict]:
    import io

    data = storage.read_bytes(uri, config)
    if uri.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
    else:
        import pyarrow.csv as pacsv

        table = pacsv.read_csv(io.BytesIO(data))
    missing = {CLEAN_URI, NOISY_URI} - set(table.column_names)
    if missing:
        raise ValueError(f"pairs manifest {uri} lacks columns {sorted(missing)}")
    return table.select([CLEAN_URI, NOISY_URI]).to_pylist()


class PairLoadStage:
    """Fetch and decode both sides to mono at the evaluation rate (CPU)."""

    def __init__(self, sample_rate: int, storage_config: storage.StorageConfig) -> None:
        self.sample_rate, self.storage = sample_rate, storage_config

    def load_row(self, row: dict) -> dict:
        out = {**row, S.DURATION_SECONDS: None, AUDIO: None, AUDIO_CHANNELS: None, REFERENCE: None}
        if row[S.STATUS] != S.STATUS_OK:
            return out
        try:
            noisy = load_mono(row[NOISY_URI], self.sample_rate, self.storage)
            clean = load_mono(row[CLEAN_URI], self.sample_rate, self.storage)
            out[S.DURATION_SECONDS] = len(noisy) / self.sample_rate
            out[AUDIO], out[AUDIO_CHANNELS] = pack_audio(noisy[None])
            out[REFERENCE] = pack_audio(clean[None])[0]
        except Exception as exc:  # this pair's error, not the job's
            out.update({S.STATUS: S.STATUS_ERROR, S.ERROR: error_text(exc)})
        return out

    def __call__(self, batch: pa.Table) -> pa.Table:
        return pa.Table.from_pylist([self.load_row(r) for r in batch.to_pylist()], schema=LOADED_SCHEMA)


class ScoreStage:
    """Baselines and metrics (CPU): one output row per (clip, model)."""

    def __init__(
        self,
        run_id: str,
        models: tuple[str, ...],
        metrics: tuple[str, ...],
        sample_rate: int,
        dnsmos: DNSMOSConfig | None = None,
    ) -> None:
        self.run_id, self.sample_rate = run_id, sample_rate
        self.models = tuple(m.split("=", 1)[0] for m in models)  # labels
        self.metrics = tuple(m for m in metrics if m in METRIC_NAMES)
        self.dnsmos = (dnsmos or DNSMOSConfig()) if DNSMOS in metrics else None

    def _output(self, model: str, row: dict, noisy: np.ndarray) -> tuple[np.ndarray, float, dict]:
        """(enhanced, seconds, columns the model stage left for this row) of one model."""
        if model not in BASELINES:
            prefix, audio = model_columns(model)
            extra = {name: row.get(prefix + name) for name in (S.MODEL_ID, S.MODEL_STATS)}
            return unpack_audio(row[audio], 1)[0], row[prefix + S.SECONDS_MODEL], extra
        start = time.perf_counter()
        out = BASELINES[model](noisy, self.sample_rate)
        return out, time.perf_counter() - start, {S.MODEL_ID: model}

    def score_row(self, row: dict) -> list[dict]:
        base = {
            S.RUN_ID: self.run_id,
            S.CLEAN_KEY: row[S.CLEAN_KEY],
            S.NOISY_KEY: row[S.NOISY_KEY],
            S.DURATION_SECONDS: row.get(S.DURATION_SECONDS),
            S.SAMPLE_RATE: self.sample_rate,
        }
        if row[S.STATUS] != S.STATUS_OK:
            return [{**base, S.MODEL: m, S.STATUS: S.STATUS_ERROR, S.ERROR: row[S.ERROR]} for m in self.models]
        noisy = unpack_audio(row[AUDIO], 1)[0]
        clean = unpack_audio(row[REFERENCE], 1)[0]
        if len(clean) != len(noisy):
            # Corpora are sometimes off by a few samples; score the common part and say so.
            n = min(len(clean), len(noisy))
            clean, noisy, trimmed = clean[:n], noisy[:n], f"trimmed to {n} common samples"
        else:
            trimmed = None
        before = score_all(clean, noisy, self.sample_rate, self.metrics)
        rows, outputs = [], []
        for model in self.models:
            out = {**base, S.MODEL: model, S.STATUS: S.STATUS_OK, S.ERROR: None}
            try:
                enhanced, seconds, extra = self._output(model, row, noisy)
                after = score_all(clean, enhanced[: len(clean)], self.sample_rate, self.metrics)
            except Exception as exc:  # a failing baseline costs its row only
                rows.append({**out, S.STATUS: S.STATUS_ERROR, S.ERROR: error_text(exc)})
                continue
            out[S.SECONDS_MODEL] = seconds
            out.update(extra)
            for name in self.metrics:
                out[name] = after[name].value
                out[f"input_{name}"] = before[name].value
                out[f"delta_{name}"] = after[name].value - before[name].value
            out[S.METRICS_ERROR] = "; ".join(filter(None, [join_errors(after), trimmed])) or None
            rows.append(out)
            outputs.append((out, enhanced[: len(clean)]))
        if self.dnsmos is not None and outputs:
            try:
                scored = dnsmos_columns(noisy, [e for _, e in outputs], self.sample_rate, self.dnsmos)
                for (out, _), columns in zip(outputs, scored):
                    out.update(columns)
            except Exception as exc:  # DNSMOS failing costs its columns, not the rows
                for out, _ in outputs:
                    out[S.METRICS_ERROR] = "; ".join(filter(None, [out[S.METRICS_ERROR], f"dnsmos: {error_text(exc)}"]))
        return rows

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = [out for r in batch.to_pylist() for out in self.score_row(r)]
        return S.to_table(rows, S.EVAL_SCHEMA)


def summarize(table: pa.Table, metrics: tuple[str, ...], worst: int = 3) -> dict:
    """Per model and metric: count, mean, median and the worst clips (lowest scores)."""
    df = table.to_pandas()
    out: dict = {"clips": int(df[S.NOISY_KEY].nunique()), "models": {}}
    for model, group in df.groupby(S.MODEL, sort=False):
        ok = group[group[S.STATUS] == S.STATUS_OK]
        entry = {"rows": len(group), "errors": int((group[S.STATUS] != S.STATUS_OK).sum()), "metrics": {}}
        for name in metrics:
            values = ok[[S.NOISY_KEY, name, f"delta_{name}"]].dropna()
            if values.empty:
                entry["metrics"][name] = {"count": 0}
                continue
            lowest = values.nsmallest(worst, name)
            entry["metrics"][name] = {
                "count": len(values),
                "mean": float(values[name].mean()),
                "median": float(values[name].median()),
                "mean_delta": float(values[f"delta_{name}"].mean()),
                "worst": [{"key": k, "value": float(v)} for k, v in zip(lowest[S.NOISY_KEY], lowest[name])],
            }
        out["models"][model] = entry
    return out


def format_summary(summary: dict) -> str:
    lines = [f"{summary['clips']} clips"]
    for model, entry in summary["models"].items():
        parts = []
        for name, m in entry["metrics"].items():
            if m["count"]:
                parts.append(f"{name} {m['mean']:.3f} (median {m['median']:.3f}, Δ {m['mean_delta']:+.3f})")
        lines.append(f"  {model:<16} errors={entry['errors']}  " + "  ".join(parts))
        for name, m in entry["metrics"].items():
            if m["count"]:
                worst = ", ".join(f"{w['key']}={w['value']:.2f}" for w in m["worst"])
                lines.append(f"      worst {name}: {worst}")
    return "\n".join(lines)


def run_evaluate(config: EvaluateConfig) -> dict:
    """Score every pair with every model; a rerun of an uncommitted run id scores only the pairs not durable yet."""
    from pipeline.core.checkpoints import load_model

    run_id = config.run_id or default_run_id()
    run = RunLifecycle(
        config.output_uri,
        run_id,
        S.EVAL_SCHEMA,
        config.storage,
        "evaluate",
        input_keys=pair_keys,
        row_keys=pair_keys,
        rows_per_input=len(config.models),
        rows_per_file=1_000_000,
    )
    paths = run.paths
    committed = run.committed()
    if committed is not None:
        return {**committed["summary"], "run_id": run_id, "already_committed": True, "run_uri": paths.run_uri}
    started = time.perf_counter()
    pairs = pair_table(config)
    neural = neural_models(config)
    sampler = config.model.sampler
    override = (
        load_model(config.model.checkpoint_uri, config.storage, sampler, False) if config.model.checkpoint_uri else None
    )
    if override is not None:
        family = override.model.name
        if family not in neural:
            raise ValueError(f"--checkpoint holds a {family} model, but models has no {family!r} entry to replace")
        neural[family] = config.model.checkpoint_uri
    model_ids = {}
    # model.sampler applies to each model whose family takes the setting; one that no model takes is an error.
    samplers: dict[str, dict] = {}
    for label, uri in neural.items():
        loaded = (
            override
            if override is not None and uri == config.model.checkpoint_uri
            else load_model(uri, config.storage, sampler, False)
        )
        model_ids[label] = loaded.model_id
        samplers[label] = loaded.sampler
    unused = sorted(set(sampler) - {k for settings in samplers.values() for k in settings})
    if unused:
        raise ValueError(
            f"model.sampler: {', '.join(unused)} is a sampler setting of none of the models {list(neural)}"
        )
        if loaded.model.config.sample_rate != config.sample_rate:
            raise ValueError(
                f"model {label} runs at {loaded.model.config.sample_rate} Hz, evaluation at {config.sample_rate} Hz"
            )
    todo = run.start(pairs)
    with run.rows() as rows:
        if todo.num_rows:
            init_ray(config.ray_address)
            quiet_ray_data()
            progress = Progress("evaluate", todo.num_rows, config.progress_seconds)
            for batch in build_dataset(config, todo, run_id, neural, samplers).iter_batches(
                batch_format="pyarrow", batch_size=None
            ):
                rows.write(batch)
                # One row per pair and model: a pair is done when its rows come back (they come together).
                pairs_done = len(set(pair_keys(batch)))
                per_pair = batch.num_rows / max(pairs_done, 1)
                progress.update(pairs_done, float(pc.sum(batch.column(S.DURATION_SECONDS)).as_py() or 0.0) / per_pair)
            progress.close()
    table = run.collect(pairs)
    columns = [m for m in config.metrics if m != DNSMOS] + (list(S.DNSMOS_BASE) if DNSMOS in config.metrics else [])
    summary = summarize(table, tuple(columns))
    model_id = ",".join(model_ids.values()) or None
    summary.update(
        {
            "run_id": run_id,
            "model_id": model_id,
            "model_ids": model_ids,
            "resumed_pairs": run.resumed_inputs,
            "wall_seconds": time.perf_counter() - started,
        }
    )
    storage.write_bytes(
        storage.join(paths.run_uri, "summary.json"), json.dumps(summary, indent=2).encode(), config.storage
    )
    run.commit(table, {"model_id": model_id, "summary": summary, "config": to_dict(config) | {"run_id": run_id}})
    return {**summary, "run_uri": paths.run_uri}


def pair_keys(table: pa.Table) -> list[str]:
    """One key per pair (its clean and noisy keys), for the pair manifest and the result rows alike."""
    return [
        f"{c or ''}\t{n or ''}"
        for c, n in zip(table.column(S.CLEAN_KEY).to_pylist(), table.column(S.NOISY_KEY).to_pylist())
    ]


def build_dataset(
    config: EvaluateConfig,
    pairs: pa.Table,
    run_id: str,
    neural: dict[str, str],
    samplers: dict[str, dict] | None = None,
):
    """Load pairs → one actor stage per neural model → score every model's output (one row per pair and model).

    ``samplers``: label → the ``model.sampler`` settings that model's family takes (default: none).
    """
    import ray

    blocks = split_blocks(pairs, config.rows_per_block)
    ds = ray.data.from_arrow(blocks)
    cpu = {"batch_format": "pyarrow", "batch_size": config.cpu_batch_size, "num_cpus": config.cpus_per_cpu_task}
    ds = ds.map_batches(PairLoadStage(config.sample_rate, config.storage), **cpu)
    for label, uri in neural.items():
        prefix, audio = model_columns(label)
        stage = dataclasses.replace(config.model, checkpoint_uri=uri, sampler=(samplers or {}).get(label, {}))
        ds = map_model(ds, config.actors, stage, config.storage, output_column=audio, blocks=len(blocks), prefix=prefix)
    if neural:
        ds = ds.repartition(target_num_rows_per_block=config.cpu_batch_size)
    score = ScoreStage(run_id, config.models, config.metrics, config.sample_rate, config.dnsmos)
    return ds.map_batches(score, udf_modifying_row_count=True, **cpu)
