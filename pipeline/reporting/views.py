"""The DuckDB views of ``diffgmm query`` and ``diffgmm report`` over one output prefix's run catalog.

DuckDB only ever sees Arrow tables in memory, read through the project's
storage layer (its own S3 extension is downloaded at run time, which a
locked-down cluster cannot do, and reads no endpoint variable). Views:

* ``clips``: every committed denoise run's rows (``CLIP_SCHEMA``, with ``run_id``);
* ``evals``: every committed evaluate run's rows (``EVAL_SCHEMA``);
* ``runs``: one row per committed run (``RUNS_SCHEMA``), from the markers;
* ``ledger``: a nightly prefix's ledger (``LEDGER_SCHEMA``; empty elsewhere);
* ``latest``: the newest committed result per input key (by commit time). On a
  prefix with a ledger, only the keys the ledger holds: the ledger is the truth
  about what exists, so an input pruned from it (``nightly --prune``) is gone
  from ``latest`` and every named query over it. Committed nightly runs the
  ledger file has not applied yet (a crash between commit and ledger write)
  are applied in memory first, as the next night would.
"""

from __future__ import annotations

import pyarrow as pa

from pipeline.core import schema as S
from pipeline.core import storage
from pipeline.core.ledger import LEDGER_KEY, Ledger
from pipeline.core.results import COMMITTED_AT, Results

_NEWEST = f"""
SELECT * EXCLUDE (rank_) FROM (
    SELECT c.*, row_number() OVER (PARTITION BY c.{S.INPUT_KEY} ORDER BY r.{COMMITTED_AT} DESC, r.{S.RUN_ID} DESC) AS rank_
    FROM clips c JOIN runs r USING ({S.RUN_ID}){{where}}
) WHERE rank_ = 1
"""
LATEST_SQL = _NEWEST.format(where="")
LATEST_IN_LEDGER_SQL = _NEWEST.format(where=f"\n    WHERE c.{S.INPUT_KEY} IN (SELECT {S.INPUT_KEY} FROM ledger)")


def connect(results: Results):
    """An in-memory DuckDB connection with the views ``clips``, ``evals``, ``runs``, ``ledger`` and ``latest``."""
    import duckdb

    con = duckdb.connect(":memory:")
    for name in ("clips", "evals", "runs"):
        con.register(name, results.table(name))
    config = results.config or storage.StorageConfig()
    has_ledger = storage.exists(storage.join(results.output_uri, LEDGER_KEY), config)
    ledger = Ledger.read(results.output_uri, config)
    # A nightly run committed just before a crash is in the ledger from the next night on; shown now.
    ledger.catch_up(results.runs, results.run_table)
    con.register("ledger", pa.Table.from_pylist([ledger.rows[k] for k in sorted(ledger.rows)], schema=S.LEDGER_SCHEMA))
    con.execute(f"CREATE VIEW latest AS {LATEST_IN_LEDGER_SQL if has_ledger else LATEST_SQL}")
    return con
