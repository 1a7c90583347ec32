#!/usr/bin/env python3
"""Read Delta tables with independent external readers and dump what they see as JSON.

Used by medallion's Rust integration tests to prove that the tables medallion writes are read
correctly by real readers that share no code with it:

  * duckdb  - DuckDB + the delta extension (delta-kernel-rs), loaded from the
              duckdb-extension-delta PyPI package by file path (no extension download).
  * spark   - Sail (pysail), a Spark Connect server started in-process on a free loopback port,
              queried through pyspark-client with spark.read.format("delta").
  * polars  - polars.read_delta (delta-rs under the hood).

Usage:
  python read_tables.py --table PATH [--table PATH ...] [--version N]
                        --reader duckdb|spark|polars|all [--reader ...]
                        [--max-rows N] [--timeout SECONDS] --out result.json

Output (see tests/interop/README.md for the full description):
  {
    "format": 1,
    "version": null | N,
    "max_rows": 100000,
    "reader_versions": {"duckdb": "1.5.5", ...},
    "results": {
      "<reader>": {
        "<table path as given>": {
          "row_count": 3,                      # COUNT(*) computed by the reader
          "columns": [{"name": "...", "type": "<reader's type>", "arrow_type": "..."}],
          "sums": {"<numeric column>": "5.000" | 12 | 1.5},   # SUM computed by the reader
          "rows": [{"col": value, ...}, ...],  # sorted, at most --max-rows
          "rows_truncated": false
        }
      }
    },
    "errors": []                               # [{"reader", "table", "error"}]
  }

Values: strings stay strings, integers are JSON integers, decimals are strings with the column's
scale ("1.250"), timestamps with a time zone are ISO UTC "YYYY-MM-DDTHH:MM:SS[.ffffff]Z"
(fraction only when non-zero), timestamps without a time zone are the same without "Z",
dates are "YYYY-MM-DD", booleans are JSON booleans, NULL is null, binary is hex, floats are
JSON numbers (or "NaN"/"Infinity"/"-Infinity").

Every requested reader runs on every table; any failure is recorded in "errors", printed to
stderr, and makes the exit status 1 (the JSON is still written). Exit status 2 is bad usage.
After --timeout seconds (default 600) a watchdog prints every thread's stack and exits 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import faulthandler
import json
import math
import os
import sys
import time
import traceback
from typing import Any, Callable

READERS = ("duckdb", "spark", "polars")

# Quiet Sail's Rust logger (INFO by default) unless the caller asked for something else.
os.environ.setdefault("RUST_LOG", "warn,sail_common::actor=error")
# Readers that render timestamps in a session time zone get UTC; serialization below does
# not depend on it (it works from the Arrow epoch values), but it keeps reader types stable.
os.environ.setdefault("TZ", "UTC")
if hasattr(time, "tzset"):
    time.tzset()


# ----------------------------------------------------------------------------------------------
# Serialization (shared by all readers: each reader hands over a pyarrow.Table it produced)
# ----------------------------------------------------------------------------------------------

_EPOCH = dt.datetime(1970, 1, 1)


def _fmt_epoch(value: int, unit: str, with_z: bool) -> str:
    per_sec = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    secs, frac = divmod(value, per_sec)  # floor division: correct for pre-1970 values too
    base = (_EPOCH + dt.timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        if unit == "ns" and frac % 1000:
            base += "." + f"{frac:09d}"
        else:
            micros = frac * 1_000_000 // per_sec
            base += "." + f"{micros:06d}"
    return base + ("Z" if with_z else "")


def _json_value(v: Any) -> Any:
    """Generic Python value -> JSON-friendly value (used for non-timestamp columns and nested)."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if isinstance(v, decimal.Decimal):
        return format(v, "f")
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
            z = "Z"
        else:
            z = ""
        s = v.strftime("%Y-%m-%dT%H:%M:%S")
        if v.microsecond:
            s += f".{v.microsecond:06d}"
        return s + z
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, dt.time):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        # map<k,v> columns come out of to_pylist as a list of (key, value) tuples
        return [_json_value(x) for x in v]
    return str(v)


def _column_values(col) -> tuple[list[Any], list[Any]]:
    """pyarrow ChunkedArray -> (native sort keys, JSON values)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    if pa.types.is_timestamp(t):
        ints = pc.cast(col, pa.int64()).to_pylist()
        with_z = t.tz is not None
        return ints, [None if i is None else _fmt_epoch(i, t.unit, with_z) for i in ints]
    if pa.types.is_dictionary(t):
        col = pc.cast(col, t.value_type)
        return _column_values(col)
    native = col.to_pylist()
    js = [_json_value(v) for v in native]
    if pa.types.is_nested(t) or pa.types.is_floating(t):
        # nested values are not mutually comparable; floats may be NaN: sort on the JSON text
        keys = [None if v is None else json.dumps(j, sort_keys=True) for v, j in zip(native, js)]
    else:
        keys = native
    return keys, js


def _sort_key(keys: tuple) -> tuple:
    # NULLs first, then the native value (every value in one column has the same Python type)
    return tuple((0, 0) if k is None else (1, k) for k in keys)


def serialize_rows(table) -> list[dict[str, Any]]:
    names = table.column_names
    if not names:
        return [{} for _ in range(table.num_rows)]
    cols = [_column_values(table.column(i)) for i in range(table.num_columns)]
    key_cols = [c[0] for c in cols]
    json_cols = [c[1] for c in cols]
    order = sorted(range(table.num_rows), key=lambda r: _sort_key(tuple(k[r] for k in key_cols)))
    return [{n: json_cols[c][r] for c, n in enumerate(names)} for r in order]


def _is_summable(arrow_type) -> bool:
    import pyarrow as pa

    return (
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_decimal(arrow_type)
    )


# ----------------------------------------------------------------------------------------------
# Readers. Each returns (row_count, columns, sums, arrow_table_of_rows).
# ----------------------------------------------------------------------------------------------


class DuckDBReader:
    name = "duckdb"

    def __init__(self, storage: dict[str, str]) -> None:
        import duckdb
        import duckdb_extension_delta

        self.version = duckdb.__version__
        ext = os.path.join(
            os.path.dirname(duckdb_extension_delta.__file__),
            "extensions",
            "v" + duckdb.__version__,
            "delta.duckdb_extension",
        )
        if not os.path.isfile(ext):
            raise RuntimeError(f"DuckDB delta extension not found at {ext}")
        self.con = duckdb.connect(
            config={
                # never try the network (there is none in CI): the extension comes by path
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
            }
        )
        self.con.execute("LOAD " + _sql_str(ext))
        self.ext_path = ext
        if storage:
            self._object_store(storage)

    def _load(self, module, name: str) -> None:
        import duckdb

        path = os.path.join(
            os.path.dirname(module.__file__), "extensions", "v" + duckdb.__version__,
            name + ".duckdb_extension",
        )
        self.con.execute("LOAD " + _sql_str(path))

    def _object_store(self, storage: dict[str, str]) -> None:
        """S3 through httpfs, Azure through the azure extension (both loaded by path),
        each with a secret for the endpoint."""
        if "aws_endpoint_url" in storage:
            import duckdb_extension_httpfs

            self._load(duckdb_extension_httpfs, "httpfs")
            endpoint = storage["aws_endpoint_url"]
            host = endpoint.split("://", 1)[-1].rstrip("/")
            self.con.execute(
                "CREATE SECRET medallion_s3 (TYPE s3, KEY_ID {}, SECRET {}, REGION {}, "
                "ENDPOINT {}, URL_STYLE 'path', USE_SSL {})".format(
                    _sql_str(storage.get("aws_access_key_id", "")),
                    _sql_str(storage.get("aws_secret_access_key", "")),
                    _sql_str(storage.get("aws_region", "us-east-1")),
                    _sql_str(host),
                    "true" if endpoint.startswith("https://") else "false",
                )
            )
        elif "azure_storage_account_name" in storage:
            import duckdb_extension_azure

            self._load(duckdb_extension_azure, "azure")
            account = storage["azure_storage_account_name"]
            endpoint = storage.get("azure_storage_endpoint", "")
            conn = "AccountName={};AccountKey={};".format(account, storage.get("azure_storage_account_key", ""))
            if endpoint:
                scheme = endpoint.split("://", 1)[0]
                conn = f"DefaultEndpointsProtocol={scheme};{conn}BlobEndpoint={endpoint};"
                # delta_scan reads through delta-kernel's own Azure client, which takes the
                # emulator's address from this variable (not from the secret).
                if account == "devstoreaccount1":
                    os.environ["AZURITE_BLOB_STORAGE_URL"] = endpoint.rsplit("/" + account, 1)[0]
            self.con.execute(
                "CREATE SECRET medallion_az (TYPE azure, CONNECTION_STRING {})".format(_sql_str(conn))
            )
        else:
            raise RuntimeError("no S3 or Azure options for DuckDB in --storage-options")

    def read(self, path: str, version: int | None, max_rows: int):
        scan = f"delta_scan({_sql_str(path)}" + (
            f", version => {int(version)})" if version is not None else ")"
        )
        rel = self.con.sql(f"SELECT * FROM {scan}")
        names = rel.columns
        types = [str(t) for t in rel.types]
        row_count = self.con.execute(f"SELECT COUNT(*) FROM {scan}").fetchone()[0]
        order = ", ".join(f"{_sql_ident(n)} ASC NULLS FIRST" for n in names)
        q = f"SELECT * FROM {scan}" + (f" ORDER BY {order}" if names else "") + f" LIMIT {int(max_rows)}"
        table = self.con.execute(q).to_arrow_table()
        sums = {}
        summable = [f.name for f in table.schema if _is_summable(f.type)]
        if summable:
            exprs = ", ".join(f"SUM({_sql_ident(n)})" for n in summable)
            vals = self.con.execute(f"SELECT {exprs} FROM {scan}").fetchone()
            sums = {n: _json_value(v) for n, v in zip(summable, vals)}
        columns = [
            {"name": n, "type": t, "arrow_type": str(f.type)}
            for n, t, f in zip(names, types, table.schema)
        ]
        return row_count, columns, sums, table

    def close(self) -> None:
        self.con.close()


class SparkReader:
    """Sail Spark Connect server in this process + a pyspark-client session."""

    name = "spark"

    def __init__(self, storage: dict[str, str]) -> None:
        import pysail
        from pysail.spark import SparkConnectServer
        from pyspark.sql import SparkSession

        if storage:
            # Sail (in this process) reaches object stores through the standard variables
            # (AWS_*, AZURE_*), the upper-case names of the object_store keys.
            os.environ.update({k.upper(): v for k, v in storage.items()})
            os.environ.update({"AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false", "AWS_EC2_METADATA_DISABLED": "true"})

        self.version = f"pysail {getattr(pysail, '__version__', _dist_version('pysail'))}, pyspark-client {_dist_version('pyspark-client')}"
        self.server = SparkConnectServer("127.0.0.1", 0)  # port 0: the OS picks a free port
        self.server.start(background=True)
        addr = self.server.listening_address
        if not addr:
            raise RuntimeError("Sail Spark Connect server did not report a listening address")
        host, port = addr
        self.url = f"sc://{host}:{port}"
        try:
            self.spark = (
                SparkSession.builder.remote(self.url)
                .config("spark.sql.session.timeZone", "UTC")
                .getOrCreate()
            )
        except BaseException:
            self.server.stop()
            raise

    def read(self, path: str, version: int | None, max_rows: int):
        from pyspark.sql import functions as F

        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", int(version))
        df = reader.load(path)
        schema = df.schema
        names = [f.name for f in schema.fields]
        row_count = df.count()
        ordered = df.orderBy(*[F.col(_spark_ident(n)).asc_nulls_first() for n in names]) if names else df
        table = ordered.limit(int(max_rows)).toArrow()
        sums = {}
        summable = [f.name for f in table.schema if _is_summable(f.type)]
        if summable:
            row = df.agg(*[F.sum(F.col(_spark_ident(n))).alias(f"s{i}") for i, n in enumerate(summable)]).collect()[0]
            sums = {n: _json_value(row[f"s{i}"]) for i, n in enumerate(summable)}
        columns = [
            {"name": f.name, "type": f.dataType.simpleString(), "arrow_type": str(af.type), "nullable": f.nullable}
            for f, af in zip(schema.fields, table.schema)
        ]
        return row_count, columns, sums, table

    def close(self) -> None:
        try:
            self.spark.stop()
        finally:
            self.server.stop()


class PolarsReader:
    name = "polars"

    def __init__(self, storage: dict[str, str]) -> None:
        import polars as pl

        self.pl = pl
        self.version = pl.__version__
        self.storage = storage or None

    def read(self, path: str, version: int | None, max_rows: int):
        pl = self.pl
        df = pl.read_delta(path, version=version, storage_options=self.storage)
        names = df.columns
        row_count = df.height
        ordered = df.sort(names, nulls_last=False) if names else df
        table = ordered.head(int(max_rows)).to_arrow()
        sums = {}
        for n, dtype in df.schema.items():
            if dtype.is_numeric():  # integers, floats and decimals
                col = df.get_column(n)
                # SQL semantics, like the other readers: SUM over no non-NULL value is NULL
                # (Polars would say 0)
                sums[n] = _json_value(col.sum()) if col.null_count() < col.len() else None
        columns = [
            {"name": n, "type": str(t), "arrow_type": str(f.type)}
            for (n, t), f in zip(df.schema.items(), table.schema)
        ]
        return row_count, columns, sums, table

    def close(self) -> None:
        pass


READER_CLASSES: dict[str, Callable[[], Any]] = {
    "duckdb": DuckDBReader,
    "spark": SparkReader,
    "polars": PolarsReader,
}


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _sql_ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def _spark_ident(s: str) -> str:
    return "`" + s.replace("`", "``") + "`"


def _dist_version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # pragma: no cover
        return "unknown"


def _error_text(exc: BaseException) -> str:
    msg = f"{type(exc).__name__}: {exc}".strip()
    return msg


# ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", action="append", required=True, metavar="PATH",
                   help="Delta table folder (repeatable)")
    p.add_argument("--reader", action="append", required=True,
                   choices=[*READERS, "all"], help="reader to use (repeatable; 'all' = every reader)")
    p.add_argument("--version", type=int, default=None, metavar="N",
                   help="read table version N (time travel) instead of the latest")
    p.add_argument("--max-rows", type=int, default=100_000, metavar="N",
                   help="dump at most N rows per table and reader (default 100000)")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the JSON result")
    p.add_argument("--storage-options", type=json.loads, default={}, metavar="JSON",
                   help="object-store options for URI tables, as object_store keys "
                        "(aws_endpoint_url, aws_access_key_id, azure_storage_account_name, ...)")
    p.add_argument("--timeout", type=float, default=600, metavar="SECONDS",
                   help="watchdog: dump every thread's stack and exit 1 after this long (default 600)")
    a = p.parse_args(argv)
    if a.max_rows < 0:
        p.error("--max-rows must be >= 0")
    if a.version is not None and a.version < 0:
        p.error("--version must be >= 0")
    return a


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.timeout > 0:
        # A hung reader (e.g. a Spark Connect client retrying against a dead server) must not
        # hang the Rust test: print where every thread is and exit 1.
        faulthandler.dump_traceback_later(args.timeout, exit=True)
    readers: list[str] = []
    for r in args.reader:
        for name in (READERS if r == "all" else (r,)):
            if name not in readers:
                readers.append(name)

    out: dict[str, Any] = {
        "format": 1,
        "version": args.version,
        "max_rows": args.max_rows,
        "reader_versions": {},
        "results": {r: {} for r in readers},
        "errors": [],
    }

    def fail(reader: str, table: str | None, exc: BaseException) -> None:
        text = _error_text(exc)
        out["errors"].append({"reader": reader, "table": table, "error": text})
        where = f"{reader}" + (f" on {table}" if table else "")
        print(f"read_tables: {where} FAILED: {text}", file=sys.stderr)
        if os.environ.get("READ_TABLES_TRACEBACK"):
            traceback.print_exception(exc, file=sys.stderr)

    for rname in readers:
        t0 = time.monotonic()
        try:
            reader = READER_CLASSES[rname](args.storage_options)
        except BaseException as exc:  # noqa: BLE001 - every failure must surface
            if isinstance(exc, KeyboardInterrupt):
                raise
            fail(rname, None, exc)
            continue
        out["reader_versions"][rname] = reader.version
        try:
            for table in args.table:
                path = table if "://" in table else os.path.abspath(table)
                try:
                    row_count, columns, sums, arrow_rows = reader.read(path, args.version, args.max_rows)
                    rows = serialize_rows(arrow_rows)
                    out["results"][rname][table] = {
                        "row_count": int(row_count),
                        "columns": columns,
                        "sums": sums,
                        "rows": rows,
                        "rows_truncated": int(row_count) > len(rows),
                    }
                except BaseException as exc:  # noqa: BLE001
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    fail(rname, table, exc)
        finally:
            try:
                reader.close()
            except BaseException as exc:  # noqa: BLE001
                if isinstance(exc, KeyboardInterrupt):
                    raise
                fail(rname, None, exc)
        print(f"read_tables: {rname}: {len(args.table)} table(s) in {time.monotonic() - t0:.1f} s",
              file=sys.stderr)

    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False, allow_nan=False)
        f.write("\n")
    os.replace(tmp, args.out)

    if out["errors"]:
        print(f"read_tables: {len(out['errors'])} reader failure(s); see above and 'errors' in {args.out}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
