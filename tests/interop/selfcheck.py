#!/usr/bin/env python3
"""Self-check of tests/interop/read_tables.py, independent of medallion.

Makes small Delta tables with the Python `deltalake` writer (and one hand-made trap table), runs
read_tables.py on them with every reader, and checks what comes back. Run it with the interop
venv's python:

    "$(scripts/setup-python.sh)" tests/interop/selfcheck.py

Exits 0 and prints "N passed, 0 failed" when everything holds; exits 1 otherwise.
SELFCHECK_KEEP=1 keeps the temporary tables and JSON results for a look.
Takes ~15 s (most of it is Python start-up of the readers, five read_tables.py runs).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake

HERE = os.path.dirname(os.path.abspath(__file__))
READ_TABLES = os.path.join(HERE, "read_tables.py")
READERS = ["duckdb", "spark", "polars"]
UTC = dt.timezone.utc
D = decimal.Decimal

passed = 0
failed = 0


def check(cond: bool, what: str) -> None:
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}", file=sys.stderr)


def check_eq(got, want, what: str) -> None:
    if got != want:
        check(False, f"{what}\n   got:  {got!r}\n   want: {want!r}")
    else:
        check(True, what)


# ---------------------------------------------------------------------------------------------
# Test data
# ---------------------------------------------------------------------------------------------

SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("usage_kwh", pa.decimal128(12, 3)),
        pa.field("start_time", pa.timestamp("us", tz="UTC")),
        pa.field("usage_date", pa.date32()),
        pa.field("reading_count", pa.int64()),
        pa.field("note", pa.string()),
    ]
)

V0 = [
    ("C000002", D("2.500"), dt.datetime(2024, 1, 1, 1, 0, 30, 123456, tzinfo=UTC), dt.date(2024, 1, 1), 2, "b"),
    ("C000001", D("1.250"), dt.datetime(2024, 1, 1, 0, 0, tzinfo=UTC), dt.date(2024, 1, 1), 1, None),
    ("C000003", D("-0.001"), dt.datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC), dt.date(1969, 12, 31), 3, "c"),
]
V1 = [
    ("C000001", D("499.999"), dt.datetime(2024, 2, 29, 23, 0, tzinfo=UTC), dt.date(2024, 2, 29), 4, "é ünïcode"),
    ("C000004", None, None, None, None, None),
]


UPSERT = [
    ("C000001", D("7.000"), dt.datetime(2024, 1, 1, 0, 0, tzinfo=UTC), dt.date(2024, 1, 1), 9, "updated"),
    ("C000005", D("0.000"), dt.datetime(2024, 3, 1, 12, 0, tzinfo=UTC), dt.date(2024, 3, 1), 0, "new"),
]
MERGED = [r for r in V0 if r[0] != "C000001"] + UPSERT


def arrow_table(rows, all_nullable: bool = False) -> pa.Table:
    schema = pa.schema([f.with_nullable(True) for f in SCHEMA]) if all_nullable else SCHEMA
    cols = list(zip(*rows))
    return pa.table({f.name: pa.array(list(c), type=f.type) for f, c in zip(schema, cols)}, schema=schema)


def make_merged_table(path: str, all_nullable: bool) -> None:
    """V0, then a delta-rs MERGE (upsert on customer_id) of UPSERT, then a checkpoint."""
    write_deltalake(path, arrow_table(V0, all_nullable))
    (
        DeltaTable(path)
        .merge(source=arrow_table(UPSERT, all_nullable), predicate="t.customer_id = s.customer_id",
               source_alias="s", target_alias="t")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )
    DeltaTable(path).create_checkpoint()


def expected_rows(rows) -> list[dict]:
    """Expected JSON rows, formatted independently of read_tables.py, in its sort order."""

    def ts(v):
        if v is None:
            return None
        s = v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        if v.microsecond:
            s += f".{v.microsecond:06d}"
        return s + "Z"

    # sort like read_tables.py: by every column in schema order, NULLs first, native values
    ordered = sorted(rows, key=lambda row: tuple((0, 0) if v is None else (1, v) for v in row))
    return [
        {
            "customer_id": cid,
            "usage_kwh": None if kwh is None else str(kwh),
            "start_time": ts(start),
            "usage_date": None if day is None else day.isoformat(),
            "reading_count": n,
            "note": note,
        }
        for cid, kwh, start, day, n, note in ordered
    ]


def expected_sums(rows) -> dict:
    kwh = [r[1] for r in rows if r[1] is not None]
    n = [r[4] for r in rows if r[4] is not None]
    return {"usage_kwh": str(sum(kwh, D("0.000"))), "reading_count": sum(n)}


def make_trap_table(path: str) -> None:
    """A Delta table whose NOT NULL string column is stored as a *nullable* Arrow string_view
    column in Parquet (embedded ARROW:schema). Sail refuses it with
    "Cannot cast column 'customer_id' from 'Utf8View' (physical) to 'Utf8' (logical)";
    DuckDB and Polars read it. The Delta log is written by hand because writers normalise
    this away."""
    os.makedirs(os.path.join(path, "_delta_log"))
    t = pa.table(
        {"customer_id": pa.array(["C000001", "C000002"], pa.string_view()), "n": pa.array([1, 2], pa.int64())},
        schema=pa.schema([pa.field("customer_id", pa.string_view(), nullable=True), pa.field("n", pa.int64())]),
    )
    name = f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
    pq.write_table(t, os.path.join(path, name))
    schema_string = json.dumps(
        {
            "type": "struct",
            "fields": [
                {"name": "customer_id", "type": "string", "nullable": False, "metadata": {}},
                {"name": "n", "type": "long", "nullable": True, "metadata": {}},
            ],
        }
    )
    now = int(time.time() * 1000)
    actions = [
        {"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
        {
            "metaData": {
                "id": str(uuid.uuid4()),
                "format": {"provider": "parquet", "options": {}},
                "schemaString": schema_string,
                "partitionColumns": [],
                "configuration": {},
                "createdTime": now,
            }
        },
        {
            "add": {
                "path": name,
                "partitionValues": {},
                "size": os.path.getsize(os.path.join(path, name)),
                "modificationTime": now,
                "dataChange": True,
            }
        },
        {"commitInfo": {"timestamp": now, "operation": "WRITE"}},
    ]
    with open(os.path.join(path, "_delta_log", "00000000000000000000.json"), "w") as f:
        for a in actions:
            f.write(json.dumps(a) + "\n")


# ---------------------------------------------------------------------------------------------


def run_read_tables(args: list[str], out: str) -> tuple[int, dict | None, str]:
    cmd = [sys.executable, READ_TABLES, *args, "--out", out]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    print(f"  read_tables {' '.join(args)} -> exit {p.returncode} in {time.monotonic() - t0:.1f} s")
    data = None
    if os.path.exists(out):
        with open(out, encoding="utf-8") as f:
            data = json.load(f)
    return p.returncode, data, p.stderr


def main() -> int:
    t_start = time.monotonic()
    work = tempfile.mkdtemp(prefix="medallion-interop-selfcheck-")
    try:
        typed = os.path.join(work, "gold", "typed")
        parted = os.path.join(work, "silver", "parted")
        trap = os.path.join(work, "trap")
        empty = os.path.join(work, "rejected", "empty")
        merged = os.path.join(work, "silver", "merged")
        merged_notnull = os.path.join(work, "silver", "merged_notnull")
        missing = os.path.join(work, "does-not-exist")

        write_deltalake(typed, arrow_table(V0))
        write_deltalake(typed, arrow_table(V1), mode="append")
        check_eq(DeltaTable(typed).version(), 1, "typed table has versions 0 and 1")
        # A partitioned table: partition values live in the log, not in the Parquet files.
        write_deltalake(parted, arrow_table(V0 + V1), partition_by=["usage_date"])
        write_deltalake(empty, SCHEMA.empty_table())
        make_trap_table(trap)
        # A merged (upserted) and checkpointed table: remove actions + a checkpoint Parquet file.
        # All columns nullable: see merged_notnull below for why.
        make_merged_table(merged, all_nullable=True)
        # The same with customer_id NOT NULL. delta-rs's MERGE (DataFusion) writes its string
        # columns as *nullable* Arrow string_view in the Parquet files, so this is the Utf8View
        # trap arising naturally: Sail fails on it, DuckDB and Polars read it.
        make_merged_table(merged_notnull, all_nullable=False)
        check(any(n.endswith(".checkpoint.parquet") for n in os.listdir(os.path.join(merged, "_delta_log"))),
              "merged table has a checkpoint")

        names = [f.name for f in SCHEMA]

        # 1. latest version, all readers, two tables
        rc, res, err = run_read_tables(["--table", typed, "--table", parted, "--table", empty, "--reader", "all"],
                                       os.path.join(work, "latest.json"))
        check_eq(rc, 0, f"latest: exit 0 (stderr: {err.strip()[-2000:]})")
        if res:
            check_eq(res["errors"], [], "latest: no errors")
            check_eq(sorted(res["reader_versions"]), sorted(READERS), "latest: all three readers ran")
            want_rows = expected_rows(V0 + V1)
            for reader in READERS:
                for table in (typed, parted):
                    r = res["results"].get(reader, {}).get(table)
                    tag = f"latest/{reader}/{os.path.basename(table)}"
                    if r is None:
                        check(False, f"{tag}: missing result")
                        continue
                    check_eq(r["row_count"], 5, f"{tag}: row_count")
                    check_eq(sorted(c["name"] for c in r["columns"]), sorted(names), f"{tag}: column names")
                    check_eq(r["rows"], want_rows, f"{tag}: rows")
                    check_eq(r["rows_truncated"], False, f"{tag}: not truncated")
                    check_eq(r["sums"], expected_sums(V0 + V1), f"{tag}: reader-computed sums")
                    types = {c["name"]: c["arrow_type"] for c in r["columns"]}
                    check_eq(types.get("usage_kwh"), "decimal128(12, 3)", f"{tag}: decimal arrow type")
                    check_eq(types.get("start_time"), "timestamp[us, tz=UTC]", f"{tag}: timestamp arrow type")
                    check_eq(types.get("usage_date"), "date32[day]", f"{tag}: date arrow type")
                    check_eq(types.get("reading_count"), "int64", f"{tag}: int64 arrow type")
            for reader in READERS:
                r = res["results"].get(reader, {}).get(empty, {})
                check_eq((r.get("row_count"), r.get("rows"), r.get("sums")),
                         (0, [], {"usage_kwh": None, "reading_count": None}),
                         f"latest/{reader}/empty: no rows, SQL-style NULL sums")
            native = {reader: {c["name"]: c["type"] for c in res["results"][reader][typed]["columns"]} for reader in READERS}
            check_eq(native["duckdb"].get("usage_kwh"), "DECIMAL(12,3)", "duckdb native decimal type")
            check_eq(native["duckdb"].get("start_time"), "TIMESTAMP WITH TIME ZONE", "duckdb native timestamp type")
            check_eq(native["spark"].get("usage_kwh"), "decimal(12,3)", "spark native decimal type")
            check_eq(native["spark"].get("start_time"), "timestamp", "spark native timestamp type")
            check_eq(native["spark"].get("reading_count"), "bigint", "spark native int64 type")
            check_eq(native["polars"].get("usage_date"), "Date", "polars native date type")

        # 2. time travel to version 0
        rc, res, err = run_read_tables(["--table", typed, "--reader", "all", "--version", "0"], os.path.join(work, "v0.json"))
        check_eq(rc, 0, f"version 0: exit 0 (stderr: {err.strip()[-2000:]})")
        if res:
            check_eq(res["version"], 0, "version 0: recorded")
            for reader in READERS:
                r = res["results"].get(reader, {}).get(typed)
                if r is None:
                    check(False, f"v0/{reader}: missing result")
                    continue
                check_eq(r["row_count"], 3, f"v0/{reader}: row_count")
                check_eq(r["rows"], expected_rows(V0), f"v0/{reader}: rows")
                check_eq(r["sums"], expected_sums(V0), f"v0/{reader}: sums")

        # 2b. merged + checkpointed table: latest and version 0
        for version, want, label in ((None, MERGED, "merged/latest"), (0, V0, "merged/v0")):
            args = ["--table", merged, "--reader", "all"] + ([] if version is None else ["--version", str(version)])
            rc, res, err = run_read_tables(args, os.path.join(work, f"{label.replace('/', '-')}.json"))
            check_eq(rc, 0, f"{label}: exit 0 (stderr: {err.strip()[-2000:]})")
            for reader in READERS:
                r = (res or {}).get("results", {}).get(reader, {}).get(merged)
                if r is None:
                    check(False, f"{label}/{reader}: missing result")
                    continue
                check_eq(r["row_count"], len(want), f"{label}/{reader}: row_count")
                check_eq(r["rows"], expected_rows(want), f"{label}/{reader}: rows")
                check_eq(r["sums"], expected_sums(want), f"{label}/{reader}: sums")

        # 3. bounded dumps
        rc, res, err = run_read_tables(["--table", typed, "--reader", "all", "--max-rows", "2"], os.path.join(work, "max.json"))
        check_eq(rc, 0, f"max-rows: exit 0 (stderr: {err.strip()[-2000:]})")
        if res:
            firsts = expected_rows(V0 + V1)[:2]
            for reader in READERS:
                r = res["results"].get(reader, {}).get(typed, {})
                check_eq(r.get("row_count"), 5, f"max-rows/{reader}: row_count is still the full count")
                check_eq(r.get("rows_truncated"), True, f"max-rows/{reader}: truncated flag")
                check_eq(r.get("rows"), firsts, f"max-rows/{reader}: first rows in sort order")

        # 4. the Utf8View trap must surface as a Spark (Sail) failure, not be skipped
        rc, res, err = run_read_tables(["--table", trap, "--reader", "all"], os.path.join(work, "trap.json"))
        check_eq(rc, 1, "trap: exit 1")
        check("Cannot cast column 'customer_id' from 'Utf8View' (physical) to 'Utf8' (logical)" in err,
              f"trap: Sail's error message on stderr (stderr: {err.strip()[-2000:]})")
        if res:
            check_eq([e["reader"] for e in res["errors"]], ["spark"], "trap: only spark failed")
            for reader in ("duckdb", "polars"):
                check_eq(res["results"][reader].get(trap, {}).get("row_count"), 2, f"trap/{reader}: reads it")

        # 4b. ... and it also arises from delta-rs MERGE on a NOT NULL string column
        rc, res, err = run_read_tables(["--table", merged_notnull, "--reader", "all"], os.path.join(work, "merged-notnull.json"))
        check_eq(rc, 1, "merge trap: exit 1 (if this fails, delta-rs/Sail changed: update this check)")
        check("Cannot cast column 'customer_id' from 'Utf8View' (physical) to 'Utf8' (logical)" in err,
              f"merge trap: Sail's error message on stderr (stderr: {err.strip()[-2000:]})")
        if res:
            check_eq([e["reader"] for e in res["errors"]], ["spark"], "merge trap: only spark failed")
            for reader in ("duckdb", "polars"):
                r = res["results"][reader].get(merged_notnull, {})
                check_eq(r.get("rows"), expected_rows(MERGED), f"merge trap/{reader}: reads it")

        # 5. a missing table fails every reader; a single reader can be chosen
        rc, res, err = run_read_tables(["--table", missing, "--reader", "duckdb", "--reader", "polars"], os.path.join(work, "missing.json"))
        check_eq(rc, 1, "missing table: exit 1")
        if res:
            check_eq(sorted(e["reader"] for e in res["errors"]), ["duckdb", "polars"], "missing table: both readers failed")
            check_eq(sorted(res["results"]), ["duckdb", "polars"], "missing table: only the chosen readers ran")
    finally:
        if os.environ.get("SELFCHECK_KEEP"):
            print(f"  kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"selfcheck: {time.monotonic() - t_start:.1f} s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
