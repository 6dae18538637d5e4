"""``diffgmm query``: SQL (DuckDB) over the committed runs under an output prefix, and named queries."""

from __future__ import annotations

import io
import sys

FORMATS = ("table", "csv", "json", "parquet")


def build_sql(args, results) -> str:
    from pipeline.reporting import queries

    if args.worst is not None:
        run = results.run(args.run_id)
        return queries.worst(run.run_id, args.worst, args.metric)
    if args.errors:
        return queries.errors(results.run(args.run_id).run_id if args.run_id else None)
    if args.compare:
        run_a, run_b = (results.run(r).run_id for r in args.compare)
        return queries.compare(run_a, run_b)
    if args.model_stats:
        run = results.run(args.run_id)
        return queries.model_stats(run.run_id, run.view)
    if args.noise_profile:
        return queries.noise_profile(args.depth)
    return args.sql or "SELECT * FROM runs ORDER BY committed_at"


def empty_worst_hint(results, run, metric: str) -> str:
    """Why ``--worst`` found nothing: which metrics this run has values for instead."""
    import math

    from pipeline.core import schema as S
    from pipeline.reporting import queries

    table = results.run_table(run)
    present = [
        m
        for m in queries.METRIC_DIRECTION
        if m in table.column_names and any(v is not None and math.isfinite(v) for v in table.column(m).to_pylist())
    ]
    why = (
        " (PESQ, SI-SDR and STOI need a clean reference: denoise --reference PREFIX)"
        if metric in S.QUALITY_COLUMNS
        else ""
    )
    return (
        f"no ok clip of run {run.run_id} has a {metric} value{why}; metrics with values in this run: "
        f"{', '.join(present) or 'none'} (--metric NAME)"
    )


def _arrow(relation):
    table = relation.arrow()
    return table.read_all() if hasattr(table, "read_all") else table  # DuckDB may hand back a record batch reader


def render(table, fmt: str) -> bytes:
    """An Arrow table as the requested format's bytes."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(table, buf)
        return buf.getvalue()
    frame = table.to_pandas()
    if fmt == "csv":
        return frame.to_csv(index=False).encode()
    if fmt == "json":
        return frame.to_json(orient="records", indent=1, date_format="iso", default_handler=str).encode() + b"\n"
    import pandas as pd

    with pd.option_context(
        "display.max_rows", 500, "display.max_columns", 50, "display.width", 200, "display.max_colwidth", 60
    ):
        text = frame.to_string(index=False) + f"\n({len(frame)} rows)" if len(frame) else "(no rows)"
    return (text + "\n").encode()


def run(args) -> int:
    from pipeline.core import storage
    from pipeline.core.results import Results
    from pipeline.reporting.views import connect

    if args.format == "parquet" and not args.out:
        raise ValueError("--format parquet needs --out FILE (Parquet is not for a terminal)")
    results = Results(args.output_uri, storage.StorageConfig(endpoint_url=args.endpoint_url))
    if not results.runs:
        print(f"no committed runs under {args.output_uri}", file=sys.stderr)
        return 1
    sql = build_sql(args, results)
    if args.show_sql:
        print(sql, file=sys.stderr)
    con = connect(results)
    table = _arrow(con.sql(sql))
    if args.compare:
        from pipeline.reporting import queries

        run_a, run_b = (results.run(r).run_id for r in args.compare)
        changed = _arrow(con.sql(queries.compare_changed(run_a, run_b))).column(0).to_pylist()
        if changed:
            shown = ", ".join(changed[:20]) + (" …" if len(changed) > 20 else "")
            print(f"not compared: {len(changed)} inputs changed between {run_a} and {run_b}: {shown}", file=sys.stderr)
    if args.worst is not None and table.num_rows == 0:
        print(empty_worst_hint(results, results.run(args.run_id), args.metric), file=sys.stderr)
    data = render(table, args.format)
    if args.out:
        storage.write_bytes(args.out, data)
        print(f"{table.num_rows} rows → {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(data.decode())
    return 0
