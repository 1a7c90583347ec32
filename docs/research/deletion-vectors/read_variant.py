"""Read one patched variant with one reader; print one JSON object of observations.

Usage: python read_variant.py READER VARIANT_DIR
READER: medallion | duckdb | polars | deltalake | sail
Every sub-check is wrapped; an exception is recorded as {"error": "<first line>"}.
"""
import datetime as dt, json, os, subprocess, sys, traceback
from decimal import Decimal

os.environ.setdefault("RUST_LOG", "warn,sail_common::actor=error")
os.environ.setdefault("TZ", "UTC")
MEDALLION = "/root/.cache/medallion/target/release/medallion"

reader, vdir = sys.argv[1], os.path.abspath(sys.argv[2])
exp = json.load(open(os.path.join(vdir, "expected.json")))
TABLE = exp["table"]
EXP_PRESENT = exp["expected_keys_present"]
DEL = {(d["meter_id"], d["start_time"]) for d in exp["deleted"]}
METERS = sorted({d["meter_id"] for d in exp["deleted"]})
IN_LIST = ", ".join(f"'{m}'" for m in METERS)
out = {"reader": reader, "variant": exp["variant"], "expected_rows": exp["expected_rows"],
       "expected_sum": exp["expected_sum_usage_kwh"], "checks": {}}


def first_line(e):
    s = f"{type(e).__name__}: {e}".strip()
    return s.splitlines()[0][:400] if s else type(e).__name__


def check(name, fn):
    try:
        out["checks"][name] = fn()
    except BaseException as e:  # noqa
        out["checks"][name] = {"error": first_line(e), "error_full": f"{type(e).__name__}: {e}"[:3000]}


def ts_str(v):
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return v.strftime("%Y-%m-%d %H:%M:%S")
    return str(v)[:19].replace("T", " ")


def summarize_rows(pairs):
    """pairs: iterable of (meter_id, start_time) of rows the reader returned for the deleted meters."""
    seen = sorted({(m, ts_str(t)) for m, t in pairs} & DEL)
    return seen


def arrow_summary(t):
    import pyarrow.compute as pc
    s = pc.sum(t["usage_kwh"]).as_py()
    present = summarize_rows(zip(t["meter_id"].to_pylist(), t["start_time"].to_pylist()))
    return {"rows": t.num_rows, "sum_usage_kwh": str(s), "deleted_keys_present": len(present),
            "correct": t.num_rows == exp["expected_rows"] and len(present) == EXP_PRESENT and Decimal(str(s)) == Decimal(exp["expected_sum_usage_kwh"])}


if reader == "medallion":
    cfg = os.path.join(vdir, "readings.yaml")

    def q(sql):
        r = subprocess.run([MEDALLION, "query", "--config", cfg, "--format", "json", sql],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"exit {r.returncode}: " + (r.stderr.strip() or r.stdout.strip()))
        return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]

    check("count_star", lambda: q("SELECT count(*) AS n FROM silver.readings")[0])
    check("scan_count_sum", lambda: q("SELECT count(*) AS n, CAST(SUM(usage_kwh) AS VARCHAR) AS s FROM silver.readings WHERE usage_kwh >= 0 OR usage_kwh IS NULL")[0])

    def lookup():
        rows = q(f"SELECT meter_id, CAST(start_time AS VARCHAR) AS st FROM silver.readings WHERE meter_id IN ({IN_LIST})")
        present = summarize_rows((r["meter_id"], r["st"]) for r in rows)
        return {"rows_for_deleted_meters": len(rows), "deleted_keys_present": len(present), "present": present}
    check("deleted_key_lookup", lookup)

elif reader == "duckdb":
    import duckdb, duckdb_extension_delta
    out["version"] = duckdb.__version__
    ext = os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions",
                       "v" + duckdb.__version__, "delta.duckdb_extension")
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.execute(f"LOAD '{ext}'")
    scan = f"delta_scan('{TABLE}')"
    check("count_star", lambda: {"n": con.execute(f"SELECT count(*) FROM {scan}").fetchone()[0]})
    check("full_read", lambda: arrow_summary(con.execute(f"SELECT * FROM {scan}").to_arrow_table()))

    def lookup():
        rows = con.execute(f"SELECT meter_id, start_time FROM {scan} WHERE meter_id IN ({IN_LIST})").fetchall()
        present = summarize_rows(rows)
        return {"rows_for_deleted_meters": len(rows), "deleted_keys_present": len(present), "present": present}
    check("deleted_key_lookup", lookup)

elif reader == "polars":
    import polars as pl
    out["version"] = pl.__version__
    check("scan_delta_len", lambda: {"n": pl.scan_delta(TABLE).select(pl.len()).collect().item()})
    check("read_delta_full", lambda: arrow_summary(pl.read_delta(TABLE).to_arrow()))
    check("scan_delta_full", lambda: arrow_summary(pl.scan_delta(TABLE).collect().to_arrow()))

    def lookup():
        df = pl.scan_delta(TABLE).filter(pl.col("meter_id").is_in(METERS)).select("meter_id", "start_time").collect()
        present = summarize_rows(df.iter_rows())
        return {"rows_for_deleted_meters": df.height, "deleted_keys_present": len(present), "present": present}
    check("deleted_key_lookup", lookup)

elif reader == "deltalake":
    import deltalake
    from deltalake import DeltaTable, QueryBuilder
    import pyarrow as pa
    out["version"] = f"deltalake {deltalake.__version__} ({deltalake.rust_core_version()})"
    check("open", lambda: {"version": DeltaTable(TABLE).version(), "protocol": str(DeltaTable(TABLE).protocol())})
    check("count_stats", lambda: {"n": DeltaTable(TABLE).count()})
    check("to_pyarrow_table", lambda: arrow_summary(DeltaTable(TABLE).to_pyarrow_table()))
    check("to_pyarrow_dataset", lambda: arrow_summary(DeltaTable(TABLE).to_pyarrow_dataset().to_table()))
    check("to_pandas", lambda: arrow_summary(pa.Table.from_pandas(DeltaTable(TABLE).to_pandas(), preserve_index=False)))
    check("scan", lambda: arrow_summary(pa.table(DeltaTable(TABLE).scan())))

    def qb():
        r = QueryBuilder().register("t", DeltaTable(TABLE)).execute("SELECT count(*) AS n FROM t")
        return {"n": pa.table(r).to_pylist()[0]["n"]}
    check("querybuilder_count", qb)

    def qb_full():
        r = QueryBuilder().register("t", DeltaTable(TABLE)).execute("SELECT * FROM t")
        return arrow_summary(pa.table(r))
    check("querybuilder_full", qb_full)

    def dvs():
        t = pa.table(DeltaTable(TABLE).deletion_vectors())
        res = []
        for fp, sel in zip(t["filepath"].to_pylist(), t["selection_vector"].to_pylist()):
            res.append({"file": os.path.basename(fp), "len": len(sel), "deleted_indexes": [i for i, k in enumerate(sel) if not k]})
        return res
    check("deletion_vectors", dvs)

elif reader == "sail":
    import pysail
    from pysail.spark import SparkConnectServer
    from pyspark.sql import SparkSession, functions as F
    from importlib.metadata import version as dv
    out["version"] = f"pysail {dv('pysail')}, pyspark-client {dv('pyspark-client')}"
    server = SparkConnectServer("127.0.0.1", 0)
    server.start(background=True)
    host, port = server.listening_address
    spark = SparkSession.builder.remote(f"sc://{host}:{port}").config("spark.sql.session.timeZone", "UTC").getOrCreate()
    try:
        check("count", lambda: {"n": spark.read.format("delta").load(TABLE).count()})
        check("full_read", lambda: arrow_summary(spark.read.format("delta").load(TABLE).toArrow()))

        def lookup():
            rows = (spark.read.format("delta").load(TABLE).filter(F.col("meter_id").isin(METERS))
                    .select("meter_id", "start_time").collect())
            present = summarize_rows((r[0], r[1]) for r in rows)
            return {"rows_for_deleted_meters": len(rows), "deleted_keys_present": len(present), "present": present}
        check("deleted_key_lookup", lookup)

        def sql_count():
            spark.read.format("delta").load(TABLE).createOrReplaceTempView("t")
            return {"n": spark.sql("SELECT count(*) AS n FROM t").collect()[0][0]}
        check("sql_count", sql_count)
    finally:
        try:
            spark.stop()
        finally:
            server.stop()
else:
    raise SystemExit(f"unknown reader {reader}")

print(json.dumps(out, default=str))
