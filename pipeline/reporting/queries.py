"""The named queries of ``diffgmm query``: what users ask first, as SQL over :mod:`pipeline.core.results` views.

Each function returns SQL text (shown with ``--show-sql``, so a user can start
their own query from it). Metric names are checked against the clip schema
before they reach SQL.
"""

from __future__ import annotations

from pipeline.core import schema as S

# Reference metrics and reference-free figures a user can rank clips by, and
# whether a higher value is better. gmm_nll: the model's own surprise at the
# noise it removed (higher = less like anything it has seen).
METRIC_DIRECTION: dict[str, bool] = {
    S.PESQ_WB: True,
    S.PESQ_NB: True,
    S.SDR_DB: True,
    S.SI_SDR_DB: True,
    S.STOI: True,
    S.REMOVED_NOISE_DB: True,
    S.GMM_NLL: False,
    **{name: True for name in S.DNSMOS_COLUMNS},
    **{f"delta_{name}": True for name in S.DNSMOS_BASE},
}
# What `--compare` puts side by side.
COMPARE_COLUMNS = (*S.QUALITY_COLUMNS, *S.DNSMOS_COLUMNS, S.REMOVED_NOISE_DB, S.GMM_NLL, S.OUTPUT_RMS_DBFS)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def check_metric(metric: str) -> str:
    if metric not in METRIC_DIRECTION:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRIC_DIRECTION)}")
    return metric


def worst(run_id: str, limit: int, metric: str) -> str:
    """The ``limit`` worst ok clips of one run by ``metric`` (NaN/null metrics last)."""
    metric = check_metric(metric)
    order = "ASC" if METRIC_DIRECTION[metric] else "DESC"
    context = [c for c in (S.DURATION_SECONDS, S.REMOVED_NOISE_DB, S.GMM_NLL, S.OUTPUT_KEY) if c != metric]
    return (
        f"SELECT {S.INPUT_KEY}, {metric}, {', '.join(context)}\n"
        f"FROM clips WHERE {S.RUN_ID} = {_quote(run_id)} AND {S.STATUS} = '{S.STATUS_OK}' AND NOT isnan({metric})\n"
        f"ORDER BY {metric} {order}, {S.INPUT_KEY} LIMIT {int(limit)}"
    )


def errors(run_id: str | None) -> str:
    """Error rows counted by ``error_kind`` (set where the error was made), with one example each."""
    where = f"{S.STATUS} <> '{S.STATUS_OK}'" + (f" AND {S.RUN_ID} = {_quote(run_id)}" if run_id else "")
    source = "clips" if run_id else "latest"
    return (
        f"SELECT coalesce({S.ERROR_KIND}, 'unknown') AS {S.ERROR_KIND}, count(*) AS clips, min({S.INPUT_KEY}) AS example_key,\n"
        f"       min({S.ERROR}) AS example_error\n"
        f"FROM {source} WHERE {where}\nGROUP BY 1 ORDER BY clips DESC, 1"
    )


# The same input bytes in both runs: the ETag where the store gives one, else size and modification
# time (as the nightly ledger's identity, pipeline.core.ledger.identity).
SAME_INPUT = (
    f"CASE WHEN a.{S.INPUT_ETAG} IS NOT NULL OR b.{S.INPUT_ETAG} IS NOT NULL "
    f"THEN a.{S.INPUT_ETAG} IS NOT DISTINCT FROM b.{S.INPUT_ETAG} "
    f"ELSE a.{S.INPUT_SIZE} IS NOT DISTINCT FROM b.{S.INPUT_SIZE} AND a.{S.INPUT_MTIME} IS NOT DISTINCT FROM b.{S.INPUT_MTIME} END"
)


def _both(run_a: str, run_b: str) -> str:
    return (
        f"FROM (SELECT * FROM clips WHERE {S.RUN_ID} = {_quote(run_a)} AND {S.STATUS} = '{S.STATUS_OK}') a\n"
        f"JOIN (SELECT * FROM clips WHERE {S.RUN_ID} = {_quote(run_b)} AND {S.STATUS} = '{S.STATUS_OK}') b USING ({S.INPUT_KEY})\n"
    )


def compare(run_a: str, run_b: str) -> str:
    """Per-clip values of every metric in both runs and their difference (B − A), on the inputs both have
    with the same content (an input that changed between the runs is listed by :func:`compare_changed`)."""
    cols = []
    for m in COMPARE_COLUMNS:
        cols += [f"a.{m} AS {m}_a", f"b.{m} AS {m}_b", f"b.{m} - a.{m} AS delta_{m}"]
    return (
        f"SELECT a.{S.INPUT_KEY}, a.{S.MODEL_ID} AS model_id_a, b.{S.MODEL_ID} AS model_id_b,\n       "
        + ",\n       ".join(cols)
        + "\n"
        + _both(run_a, run_b)
        + f"WHERE {SAME_INPUT}\nORDER BY a.{S.INPUT_KEY}"
    )


def compare_changed(run_a: str, run_b: str) -> str:
    """The inputs both runs processed whose content changed between them: a delta there is the input's, not the model's."""
    return (
        f"SELECT a.{S.INPUT_KEY}, a.{S.INPUT_SIZE} AS input_size_a, b.{S.INPUT_SIZE} AS input_size_b,\n"
        f"       a.{S.INPUT_ETAG} AS input_etag_a, b.{S.INPUT_ETAG} AS input_etag_b\n"
        + _both(run_a, run_b)
        + f"WHERE NOT ({SAME_INPUT})\nORDER BY a.{S.INPUT_KEY}"
    )


def model_stats(run_id: str, source: str = "clips") -> str:
    """Every per-clip model stat of one run (the ``model_stats`` map: DiffGMM's gmm_nll and occupancies,
    AIGD's image_ssim, …): clips, mean, min and max per model and stat. ``source``: clips or evals
    (an evaluation groups by its model labels, a denoise run by model id)."""
    if source not in ("clips", "evals"):
        raise ValueError(f"source must be clips or evals, got {source!r}")
    group = S.MODEL if source == "evals" else S.MODEL_ID
    return (
        f"SELECT {group}, entry.key AS stat, count(*) AS clips, avg(entry.value) AS mean,\n"
        f"       min(entry.value) AS min, max(entry.value) AS max\n"
        f"FROM (SELECT {group}, unnest(map_entries({S.MODEL_STATS})) AS entry FROM {source}\n"
        f"      WHERE {S.RUN_ID} = {_quote(run_id)} AND {S.STATUS} = '{S.STATUS_OK}')\n"
        f"GROUP BY {group}, stat ORDER BY {group}, stat"
    )


def noise_profile(depth: int = 1) -> str:
    """Per folder of the input keys (``latest``, first ``depth`` segments): what each family says about its noise.

    Every folder with ok clips: clips, hours, mean removed noise. Where clips carry
    DiffGMM's mixture (``gmm_occupancy``): mean ``gmm_nll``, the mean occupancy (π per
    component, a list) and the dominant component; components are the model's own and
    unnamed, so compare folders, not labels. Where clips carry UDiffSE's NMF noise
    fingerprint (``model_stats``): ``fingerprint_clips``, ``mean_noise_band_db`` (the
    mean over clips of the noise level per octave band, 0–125–250–500–1k–2k–4k–8k Hz, a
    list in dB re unit-variance white noise), ``median_noise_dominant_hz`` (the dominant
    NMF template's centre frequency) and ``mean_em_nll`` (the EM's final noise NLL, nats).
    A family's columns are null in folders where no clip has its stats.
    """
    depth = int(depth)
    folder = (
        f"CASE WHEN len(string_split({S.INPUT_KEY}, '/')) > {depth} "
        f"THEN array_to_string(string_split({S.INPUT_KEY}, '/')[1:{depth}], '/') ELSE '.' END"
    )
    band = f"{S.NOISE_BAND_DB}_"
    return f"""WITH ok AS (
    SELECT {folder} AS folder, * FROM latest WHERE {S.STATUS} = '{S.STATUS_OK}'
), per_component AS (
    SELECT folder, k, avg(w) AS occupancy FROM (
        SELECT folder, unnest(range(1, len({S.GMM_OCCUPANCY}) + 1)) AS k, unnest({S.GMM_OCCUPANCY}) AS w
        FROM ok WHERE {S.GMM_OCCUPANCY} IS NOT NULL
    ) GROUP BY folder, k
), occupancy AS (
    SELECT folder, list(round(occupancy, 4) ORDER BY k) AS mean_occupancy,
           arg_max(k, occupancy) AS dominant_component FROM per_component GROUP BY folder
), mixture AS (
    SELECT folder, avg({S.GMM_NLL}) AS gmm_nll FROM ok WHERE {S.GMM_OCCUPANCY} IS NOT NULL GROUP BY folder
), per_band AS (
    SELECT folder, CAST(substr(entry.key, {len(band) + 1}) AS INTEGER) AS band, avg(entry.value) AS level FROM (
        SELECT folder, unnest(map_entries({S.MODEL_STATS})) AS entry FROM ok
    ) WHERE starts_with(entry.key, '{band}') AND isfinite(entry.value) GROUP BY folder, band
), bands AS (
    SELECT folder, list(round(level, 2) ORDER BY band) AS mean_noise_band_db FROM per_band GROUP BY folder
), fingerprint AS (
    SELECT folder, count(*) AS fingerprint_clips,
           median({S.MODEL_STATS}['{S.NOISE_DOMINANT_HZ}']) FILTER (WHERE isfinite({S.MODEL_STATS}['{S.NOISE_DOMINANT_HZ}'])) AS dominant_hz,
           avg({S.MODEL_STATS}['{S.EM_NLL}']) FILTER (WHERE isfinite({S.MODEL_STATS}['{S.EM_NLL}'])) AS em_nll
    FROM ok WHERE map_contains({S.MODEL_STATS}, '{S.NOISE_DOMINANT_HZ}') GROUP BY folder
)
SELECT folder, count(*) AS clips, round(sum({S.DURATION_SECONDS}) / 3600, 4) AS audio_hours,
       round(avg({S.REMOVED_NOISE_DB}), 2) AS mean_removed_noise_db,
       round(any_value(mixture.gmm_nll), 3) AS mean_gmm_nll,
       any_value(dominant_component) AS dominant_component, any_value(mean_occupancy) AS mean_occupancy,
       any_value(fingerprint_clips) AS fingerprint_clips, any_value(mean_noise_band_db) AS mean_noise_band_db,
       round(any_value(dominant_hz), 1) AS median_noise_dominant_hz, round(any_value(fingerprint.em_nll), 4) AS mean_em_nll
FROM ok LEFT JOIN mixture USING (folder) LEFT JOIN occupancy USING (folder)
        LEFT JOIN bands USING (folder) LEFT JOIN fingerprint USING (folder)
GROUP BY folder ORDER BY folder"""
