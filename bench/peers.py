#!/usr/bin/env python3
"""The benchmark's peers: the same job as `medallion run`, done with DuckDB or Polars.

    python bench/peers.py duckdb       --config config.yaml --raw DIR --out DIR
    python bench/peers.py duckdb-copy  --config config.yaml --raw DIR --out DIR
    python bench/peers.py polars-delta --config config.yaml --raw DIR --out DIR

Each run is one process (bench/run.py measures its wall time and peak RSS) and prints,
as its last stdout line, `RESULT {json}` with its own counts.

duckdb        DuckDB (Python package), the whole raw zone in one batch, Parquet out:
              bronze/ (every row as text + lineage, one file per raw file),
              rejected.parquet (raw text + lineage + rejection_reasons: every failed rule),
              silver.parquet (typed accepted rows, last line per natural key wins, files
              in name order), gold/<model>.parquet (the model's SQL over silver).
duckdb-copy   the floor: COPY (SELECT * FROM read_csv(raw files, all text)) TO one Parquet.
polars-delta  Polars + deltalake, file by file like medallion, into Delta tables: bronze
              and rejected appended, silver MERGEd on the natural key (DeltaTable.merge),
              gold: the model keys the file touched are recomputed from silver (the model's
              SQL via polars.SQLContext) and MERGEd into gold.
duckdb-simple what a user would write in twenty lines with DuckDB: every file in one
              read_csv, the same rules, bronze/rejected/silver/gold as Parquet, silver
              appended with no de-duplication (so it differs when keys repeat).
polars-simple the same in Polars + deltalake: one read_csv per file concatenated, Delta
              appends for bronze, rejected and silver, gold by the model's SQL, overwritten.

The rules come from the config file (bench/rules.py says which semantics are mirrored).
Like medallion, one CSV record is assumed to be one physical line for _source_line.
"""

import argparse
import json
import shutil
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rules as R  # noqa: E402


def result(**kw):
    print("RESULT " + json.dumps(kw, default=str), flush=True)


def sql_str(s):
    return "'" + str(s).replace("'", "''") + "'"


# ---------------------------------------------------------------------------------------
# DuckDB
# ---------------------------------------------------------------------------------------


def duckdb_connect(tmp: Path):
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.execute(f"SET temp_directory={sql_str(tmp)}")
    con.execute("SET preserve_insertion_order=true")
    return con


def duckdb_read_csv(spec, paths):
    """read_csv over raw files, every configured column as text, exactly as in the file
    (an empty field stays '' as in medallion's bronze; nothing is null-converted)."""
    files = "[" + ", ".join(sql_str(p) for p in paths) + "]"
    if spec.header:
        cols = ", ".join(f"{sql_str(c.source)}: 'VARCHAR'" for c in spec.columns)
        # auto_detect off: the header is skipped and columns are taken in file order, so
        # check that the header is what we expect (medallion matches by name).
        return (f"read_csv({files}, header=true, auto_detect=false, delim={sql_str(spec.delimiter)}, "
                f"quote={sql_str(spec.quote)}, escape={sql_str(spec.quote)}, "
                f"nullstr='\\x00medallion-no-null', columns={{{cols}}})")
    raise SystemExit("bench peers need csv.header: true")


def check_header(spec, path):
    import csv
    import gzip

    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
        header = next(csv.reader(f, delimiter=spec.delimiter, quotechar=spec.quote))
    want = [c.source for c in spec.columns]
    if [h.strip() for h in header] != want:
        raise SystemExit(f"{path}: header {header} is not {want} (the peers read columns in order)")


class Violation:
    """One check that can fail on a row: rule name, column (None for row rules), action,
    and, per engine, the condition (true = broken) and the message."""

    def __init__(self, rule, column, action, cond, message):
        self.rule, self.column, self.action, self.cond, self.message = rule, column, action, cond, message


def duckdb_validated_sql(spec, source):
    """(SELECT over `source`, violations). `source` is bronze (raw text columns named as
    configured + lineage). Each output row has the raw text (r__<i>), the typed values
    (column names), the lineage, one boolean f__<k> per violation k and _rejected."""
    ws = sql_str(R.WHITESPACE)
    nulls = "(" + ", ".join(sql_str(v) for v in spec.null_values) + ")"
    s1, s2, viol = [], [], []
    for i, c in enumerate(spec.columns):
        q = f'"{c.name}"'
        s1.append(f"{q} AS r__{i}")
        s1.append((f"trim({q}, {ws})" if spec.trim else q) + f" AS t__{i}")
        s1.append(f"({q} IS NULL OR trim({q}, {ws}) IN {nulls}) AS m__{i}")
        v = f"t__{i}"
        k = c.type.kind
        if k == "string":
            parsed = v
        elif k == "decimal":
            syn, fits = R.decimal_res(c.type.precision, c.type.scale)
            parsed = (f"CASE WHEN regexp_full_match({v}, {sql_str(syn)}) AND regexp_full_match({v}, {sql_str(fits)}) "
                      f"THEN CAST({v} AS {c.type.duckdb()}) END")
        elif k == "timestamp":
            parsed = (f"CASE WHEN regexp_full_match({v}, {sql_str(R.TS_ANY)}) "
                      f"THEN try_cast(upper({v}) AS TIMESTAMPTZ) END")
        elif k in ("int", "bigint"):
            parsed = f"CASE WHEN regexp_full_match({v}, {sql_str(R.INT_RE)}) THEN try_cast({v} AS {c.type.duckdb()}) END"
        elif k == "double":
            parsed = f"CASE WHEN isfinite(try_cast({v} AS DOUBLE)) THEN try_cast({v} AS DOUBLE) END"
        elif k == "bool":
            parsed = (f"CASE WHEN lower({v}) IN ({', '.join(map(sql_str, R.BOOL_TRUE))}) THEN true "
                      f"WHEN lower({v}) IN ({', '.join(map(sql_str, R.BOOL_FALSE))}) THEN false END")
        elif k == "date":
            parsed = f"CASE WHEN regexp_full_match({v}, {sql_str(R.DATE_RE)}) THEN try_cast({v} AS DATE) END"
        else:
            raise SystemExit(f"type {k} not supported")
        default = "NULL" if c.default is None else f"CAST({sql_str(c.default)} AS {c.type.duckdb()})"
        s2.append(f"CASE WHEN m__{i} THEN {default} ELSE {parsed} END AS \"{c.name}\"")
        s2.append(f"(NOT m__{i} AND ({parsed}) IS NULL) AS tf__{i}")
        # messages are built for rejected rows only, from the raw text
        excerpt = f"'\"' || left(trim(r__{i}, {ws}), 64) || '\"'"
        if c.required and c.default is None:
            viol.append(Violation("required", c.name, "reject", f"m__{i}", "'value is missing'"))
        viol.append(Violation("type", c.name, "reject", f"tf__{i}", f"'not a {c.type.kind}: ' || {excerpt}"))
        ok = f"NOT m__{i} AND NOT tf__{i}"
        for r in c.rules:
            if r.kind == "pattern":
                bad = f"NOT regexp_matches(t__{i}, {sql_str(R.rust_regex_to_re2(r.pattern))})"
                msg = f"{excerpt} || ' does not match ' || {sql_str(r.pattern)}"
            elif r.kind == "allowed":
                bad = f"t__{i} NOT IN ({', '.join(map(sql_str, r.allowed))})"
                msg = f"{excerpt} || ' is not one of: ' || {sql_str(', '.join(r.allowed))}"
            else:
                conds = []
                if r.min is not None:
                    conds.append(f'"{c.name}" < CAST({sql_str(r.min)} AS {c.type.duckdb()})')
                if r.max is not None:
                    conds.append(f'"{c.name}" > CAST({sql_str(r.max)} AS {c.type.duckdb()})')
                bad = "(" + " OR ".join(conds) + ")"
                msg = f"{excerpt} || ' is outside [{r.min}, {r.max}]'"
            viol.append(Violation(r.name, c.name, r.action, f"{ok} AND {bad}", msg))
    for r in spec.row_rules:
        viol.append(Violation(r.name, None, r.action, f"({r.check}) = false",
                              sql_str("check failed: " + r.check.strip())))
    flags = ", ".join(f"coalesce({x.cond}, false) AS f__{k}" for k, x in enumerate(viol))
    rejected = " OR ".join(f"f__{k}" for k, x in enumerate(viol) if x.action == "reject") or "false"
    lineage = "_source_file, _source_line, _batch_id, _received_at"
    sql = f"""
        WITH s1 AS (SELECT {', '.join(s1)}, {lineage} FROM {source}),
             s2 AS (SELECT s1.*, {', '.join(s2)} FROM s1),
             s3 AS (SELECT {', '.join(f'r__{i}' for i in range(len(spec.columns)))},
                           {', '.join(f'"{c.name}"' for c in spec.columns)}, {lineage}, {flags} FROM s2)
        SELECT *, ({rejected}) AS _rejected FROM s3"""
    return sql, viol


def duckdb_reasons_sql(viol, action="reject"):
    items = [f"CASE WHEN f__{k} THEN {{'rule': {sql_str(x.rule)}, 'column': "
             f"{sql_str(x.column) if x.column else 'NULL::VARCHAR'}, 'message': {x.message}}} END"
             for k, x in enumerate(viol) if x.action == action]
    if not items:
        return "[]::STRUCT(rule VARCHAR, \"column\" VARCHAR, message VARCHAR)[]"
    return "list_filter([" + ", ".join(items) + "], x -> x IS NOT NULL)"


def count_violations(viol, sums_rejected, sums_kept):
    """Per rule: rejected rows per violation (like medallion, a row failing `type` on two
    columns counts twice), warnings on kept rows."""
    by_rule, warned = {}, {}
    for x, nr, nk in zip(viol, sums_rejected, sums_kept):
        if x.action == "reject" and nr:
            by_rule[x.rule] = by_rule.get(x.rule, 0) + int(nr)
        elif x.action == "warn" and nk:
            warned[x.rule] = warned.get(x.rule, 0) + int(nk)
    return dict(sorted(by_rule.items())), dict(sorted(warned.items()))


def run_duckdb(args):
    spec = R.load(args.config)
    out = args.out
    files = spec.discover(args.raw)
    for _, p in files:
        check_header(spec, p)
    con = duckdb_connect(out / "_tmp")
    t0 = time.perf_counter()
    (out / "bronze").mkdir(parents=True)
    raw_cols = ", ".join(f'"{c.source}" AS "{c.name}"' for c in spec.columns)
    for i, (name, path) in enumerate(files):
        # Bronze: the rows as read, with lineage. row_number() OVER () keeps file order
        # (a streaming window), so line = header + row number.
        con.execute(f"""COPY (SELECT {raw_cols}, {sql_str(name)} AS _source_file,
                                     CAST(row_number() OVER () + 1 AS BIGINT) AS _source_line,
                                     {sql_str(uuid.uuid4())} AS _batch_id,
                                     now() AS _received_at
                              FROM {duckdb_read_csv(spec, [path])})
                        TO {sql_str(out / 'bronze' / f'part-{i:05d}.parquet')} (FORMAT parquet)""")
    t_bronze = time.perf_counter()
    bronze = f"read_parquet({sql_str(out / 'bronze' / '*.parquet')})"
    sql, viol = duckdb_validated_sql(spec, bronze)
    con.execute(f"CREATE TEMP TABLE v AS {sql}")
    fail = " OR ".join(f"f__{k}" for k, x in enumerate(viol) if x.action == "fail")
    if fail and con.execute(f"SELECT count(*) FROM v WHERE {fail}").fetchone()[0]:
        raise SystemExit("rows break a fail rule")
    t_validate = time.perf_counter()
    raw_out = ", ".join(f'r__{i} AS "{c.name}"' for i, c in enumerate(spec.columns))
    con.execute(f"""COPY (SELECT {raw_out}, _source_file, _source_line, _batch_id, _received_at,
                                 {duckdb_reasons_sql(viol)} AS rejection_reasons FROM v WHERE _rejected)
                    TO {sql_str(out / 'rejected.parquet')} (FORMAT parquet)""")
    typed = ", ".join(f'"{c.name}"' for c in spec.columns)
    key = ", ".join(f'"{k}"' for k in spec.key)
    con.execute(f"""COPY (SELECT {typed}, _received_at AS received_at, _source_file, _source_line, _batch_id
                          FROM v WHERE NOT _rejected
                          QUALIFY row_number() OVER (PARTITION BY {key}
                                                     ORDER BY _source_file DESC, _source_line DESC) = 1)
                    TO {sql_str(out / 'silver.parquet')} (FORMAT parquet)""")
    t_silver = time.perf_counter()
    con.execute(f"CREATE VIEW silver AS SELECT * FROM read_parquet({sql_str(out / 'silver.parquet')})")
    (out / "gold").mkdir()
    for g in spec.gold:
        # DuckDB sums integers into HUGEINT, which Parquet stores as DOUBLE: keep BIGINT
        # like medallion (DataFusion's Int64).
        cols = con.execute(f"DESCRIBE ({g.sql})").fetchall()
        sel = ", ".join(f'CAST("{c[0]}" AS BIGINT) AS "{c[0]}"' if c[1] == "HUGEINT" else f'"{c[0]}"' for c in cols)
        con.execute(f"COPY (SELECT {sel} FROM ({g.sql})) TO {sql_str(out / 'gold' / (g.name + '.parquet'))} "
                    "(FORMAT parquet)")
    t_gold = time.perf_counter()
    sums = ", ".join(f"count(*) FILTER (WHERE f__{k} AND _rejected), count(*) FILTER (WHERE f__{k} AND NOT _rejected)"
                     for k in range(len(viol)))
    row = con.execute(f"SELECT count(*), count(*) FILTER (WHERE _rejected), {sums} FROM v").fetchone()
    by_rule, warned = count_violations(viol, row[2::2], row[3::2])
    shutil.rmtree(out / "_tmp", ignore_errors=True)
    result(job="duckdb", files=len(files),
           stages_s={"bronze": t_bronze - t0, "validate": t_validate - t_bronze, "rejected+silver": t_silver - t_validate,
                     "gold": t_gold - t_silver},
           rows=row[0], accepted=row[0] - row[1], rejected=row[1], rejected_by_rule=by_rule, warned=warned)


def run_duckdb_copy(args):
    spec = R.load(args.config)
    files = spec.discover(args.raw)
    con = duckdb_connect(args.out / "_tmp")
    target = args.out / "all.parquet"
    con.execute(f"COPY (SELECT * FROM {duckdb_read_csv(spec, [p for _, p in files])}) "
                f"TO {sql_str(target)} (FORMAT parquet)")
    (rows,) = con.execute(f"SELECT count(*) FROM read_parquet({sql_str(target)})").fetchone()
    shutil.rmtree(args.out / "_tmp", ignore_errors=True)
    result(job="duckdb-copy", files=len(files), rows=rows)


# ---------------------------------------------------------------------------------------
# Polars + deltalake
# ---------------------------------------------------------------------------------------


def polars_validate(spec, raw):
    """raw: DataFrame of text columns (configured names) + lineage. Returns (frame,
    violations): the frame has r__<i> raw text, typed columns (configured names), one
    boolean f__<k> per violation and _rejected; reasons are built by polars_reasons for
    the rejected rows only (building lists of structs for every row is slow in Polars)."""
    import polars as pl

    df = raw.lazy().with_columns([pl.col(c.name).alias(f"r__{i}") for i, c in enumerate(spec.columns)])
    pre = []
    for i, c in enumerate(spec.columns):
        r = pl.col(f"r__{i}")
        t = r.str.strip_chars() if spec.trim else r  # Rust str::trim, as medallion
        pre += [t.alias(f"t__{i}"), (r.is_null() | r.str.strip_chars().is_in(spec.null_values)).alias(f"m__{i}")]
    df = df.with_columns(pre)
    typed, viol = [], []
    for i, c in enumerate(spec.columns):
        v, m = pl.col(f"t__{i}"), pl.col(f"m__{i}")
        k = c.type.kind
        if k == "string":
            parsed, dtype = v, pl.String
        elif k == "decimal":
            syn, fits = R.decimal_res(c.type.precision, c.type.scale)
            dtype = pl.Decimal(c.type.precision, c.type.scale)
            parsed = pl.when(v.str.contains(syn) & v.str.contains(fits)).then(v.cast(dtype, strict=False))
        elif k == "timestamp":
            # one parse per accepted spelling (cheap in Polars), behind the gate regex
            dtype = pl.Datetime("us", "UTC")
            u = v.str.to_uppercase()
            aware = [u.str.to_datetime(f, strict=False, time_unit="us", time_zone="UTC")
                     for f in ("%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%:z")]
            naive = [u.str.to_datetime(f, strict=False, time_unit="us").dt.replace_time_zone("UTC")
                     for f in ("%Y-%m-%dT%H:%M:%S%.fZ", "%Y-%m-%d %H:%M:%S%.fZ", "%Y-%m-%dT%H:%M:%S%.f",
                               "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M")]
            parsed = pl.when(v.str.contains(R.TS_ANY)).then(pl.coalesce(naive[:1] + aware + naive[1:]))
        elif k in ("int", "bigint"):
            dtype = pl.Int32 if k == "int" else pl.Int64
            parsed = pl.when(v.str.contains(R.INT_RE)).then(v.cast(dtype, strict=False))
        elif k == "double":
            dtype = pl.Float64
            d = v.cast(pl.Float64, strict=False)
            parsed = pl.when(d.is_finite()).then(d)
        elif k == "bool":
            dtype = pl.Boolean
            lo = v.str.to_lowercase()
            parsed = pl.when(lo.is_in(R.BOOL_TRUE)).then(True).when(lo.is_in(R.BOOL_FALSE)).then(False)
        elif k == "date":
            dtype = pl.Date
            parsed = pl.when(v.str.contains(R.DATE_RE)).then(v.str.to_date("%Y-%m-%d", strict=False))
        else:
            raise SystemExit(f"type {k} not supported")
        default = pl.lit(None, dtype) if c.default is None else pl.lit(c.default).cast(dtype)
        typed += [pl.when(m).then(default).otherwise(parsed.cast(dtype)).alias(c.name),
                  (~m & parsed.is_null()).alias(f"tf__{i}")]
    df = df.with_columns(typed)
    for i, c in enumerate(spec.columns):
        v, m, tf = pl.col(f"t__{i}"), pl.col(f"m__{i}"), pl.col(f"tf__{i}")
        excerpt = '"' + pl.col(f"r__{i}").str.strip_chars().str.slice(0, 64) + '"'
        if c.required and c.default is None:
            viol.append(Violation("required", c.name, "reject", m, pl.lit("value is missing")))
        viol.append(Violation("type", c.name, "reject", tf, f"not a {c.type.kind}: " + excerpt))
        ok = ~m & ~tf
        for r in c.rules:
            col = pl.col(c.name)
            if r.kind == "pattern":
                bad = ~v.str.contains(r.pattern)  # Rust regex crate, like medallion
                msg = excerpt + f" does not match {r.pattern}"
            elif r.kind == "allowed":
                bad = ~v.is_in(r.allowed)
                msg = excerpt + " is not one of: " + ", ".join(r.allowed)
            else:
                bad = pl.lit(False)
                dtype = df.collect_schema()[c.name]
                if r.min is not None:
                    bad = bad | (col < pl.lit(str(r.min)).cast(dtype))
                if r.max is not None:
                    bad = bad | (col > pl.lit(str(r.max)).cast(dtype))
                msg = excerpt + f" is outside [{r.min}, {r.max}]"
            viol.append(Violation(r.name, c.name, r.action, ok & bad, msg))
    for r in spec.row_rules:
        viol.append(Violation(r.name, None, r.action, pl.sql_expr(r.check).not_(),
                              pl.lit("check failed: " + r.check.strip())))
    flags = [x.cond.fill_null(False).alias(f"f__{k}") for k, x in enumerate(viol)]
    rej = [pl.col(f"f__{k}") for k, x in enumerate(viol) if x.action == "reject"]
    df = df.with_columns(flags).with_columns(
        _rejected=pl.any_horizontal(rej) if rej else pl.lit(False))
    keep = ([f"r__{i}" for i in range(len(spec.columns))] + [c.name for c in spec.columns]
            + [c for c in raw.columns if c.startswith("_")] + [f"f__{k}" for k in range(len(viol))] + ["_rejected"])
    # messages use only r__<i>: polars_reasons builds them for the rejected rows
    return df.select(keep).collect(), viol


def polars_reasons(viol, action="reject"):
    import polars as pl

    items = [pl.when(pl.col(f"f__{k}")).then(pl.struct(rule=pl.lit(x.rule, pl.String),
                                                       column=pl.lit(x.column, pl.String),
                                                       message=x.message.cast(pl.String)))
             for k, x in enumerate(viol) if x.action == action]
    if not items:
        return pl.lit([], pl.List(pl.Struct({"rule": pl.String, "column": pl.String, "message": pl.String})))
    return pl.concat_list(items).list.drop_nulls()


def to_arrow(df):
    import polars as pl

    return df.to_arrow(compat_level=pl.CompatLevel.oldest())


def run_polars_delta(args):
    import polars as pl
    from deltalake import DeltaTable, write_deltalake

    spec = R.load(args.config)
    files = spec.discover(args.raw)
    for _, p in files:
        check_header(spec, p)
    out = args.out
    paths = {t: str(out / t / spec.source) for t in ("bronze", "silver", "rejected")}
    gold_paths = {g.name: str(out / "gold" / g.name) for g in spec.gold}
    typed = [c.name for c in spec.columns]
    totals = {"rows": 0, "accepted": 0, "rejected": 0, "rejected_by_rule": {}, "warned": {},
              "silver_inserted": 0, "silver_updated": 0, "gold_inserted": 0, "gold_updated": 0}
    stages = {"read": 0.0, "validate": 0.0, "bronze": 0.0, "rejected": 0.0, "silver": 0.0, "gold": 0.0}
    key_pred = " AND ".join(f't."{k}" = s."{k}"' for k in spec.key)
    for name, path in files:
        t = time.perf_counter()
        batch = str(uuid.uuid4())
        now = datetime.now(timezone.utc)
        raw = pl.read_csv(path, has_header=True, infer_schema=False, separator=spec.delimiter,
                          quote_char=spec.quote, empty_string_is_null=False,
                          columns=[c.source for c in spec.columns], raise_if_empty=False)
        raw = raw.rename({c.source: c.name for c in spec.columns if c.source != c.name})
        raw = raw.with_row_index("_source_line", offset=2).with_columns(
            pl.col("_source_line").cast(pl.Int64),
            _source_file=pl.lit(name), _batch_id=pl.lit(batch),
            _received_at=pl.lit(now).cast(pl.Datetime("us", "UTC")))
        lineage = ["_source_file", "_source_line", "_batch_id", "_received_at"]
        raw = raw.select(typed + lineage)
        stages["read"] += time.perf_counter() - t
        t = time.perf_counter()
        write_deltalake(paths["bronze"], to_arrow(raw), mode="append")
        stages["bronze"] += time.perf_counter() - t
        t = time.perf_counter()
        v, viol = polars_validate(spec, raw)
        fail = [pl.col(f"f__{k}") for k, x in enumerate(viol) if x.action == "fail"]
        if fail and v.select(pl.any_horizontal(fail).any()).item():
            raise SystemExit(f"{name}: a fail rule is broken; file not loaded")
        rej = v.filter(pl.col("_rejected"))
        acc = v.filter(~pl.col("_rejected"))
        stages["validate"] += time.perf_counter() - t
        t = time.perf_counter()
        if rej.height:
            write_deltalake(paths["rejected"], to_arrow(rej.select(
                [pl.col(f"r__{i}").alias(c.name) for i, c in enumerate(spec.columns)]
                + lineage + [polars_reasons(viol).alias("rejection_reasons")])), mode="append")
        stages["rejected"] += time.perf_counter() - t
        totals["rows"] += v.height
        totals["rejected"] += rej.height
        totals["accepted"] += acc.height
        sums = v.select([pl.col(f"f__{k}").and_(pl.col("_rejected")).sum().alias(f"r{k}") for k in range(len(viol))]
                        + [pl.col(f"f__{k}").and_(~pl.col("_rejected")).sum().alias(f"k{k}")
                           for k in range(len(viol))]).row(0)
        by_rule, warned = count_violations(viol, sums[:len(viol)], sums[len(viol):])
        for rule, n in by_rule.items():
            totals["rejected_by_rule"][rule] = totals["rejected_by_rule"].get(rule, 0) + n
        for rule, n in warned.items():
            totals["warned"][rule] = totals["warned"].get(rule, 0) + n
        # silver: last line of the file wins, then MERGE on the natural key
        t = time.perf_counter()
        src = acc.unique(subset=spec.key, keep="last", maintain_order=True).select(
            typed + [pl.col("_received_at").alias("received_at"), "_source_file", "_source_line", "_batch_id"])
        if src.height:
            if not DeltaTable.is_deltatable(paths["silver"]):
                write_deltalake(paths["silver"], to_arrow(src), mode="append")
                totals["silver_inserted"] += src.height
            else:
                m = (DeltaTable(paths["silver"]).merge(to_arrow(src), predicate=key_pred, source_alias="s",
                                                      target_alias="t")
                     .when_matched_update_all().when_not_matched_insert_all().execute())
                totals["silver_inserted"] += m.get("num_target_rows_inserted", 0)
                totals["silver_updated"] += m.get("num_target_rows_updated", 0)
        stages["silver"] += time.perf_counter() - t
        # gold: recompute the model keys this file touched, MERGE them. With an upsert-only
        # silver and a key that contains the gold keys' inputs, a touched key never
        # disappears, so no deletes are needed (medallion handles them in general).
        t = time.perf_counter()
        if src.height:
            for g in spec.gold:
                touched = pl.SQLContext(silver=src.lazy()).execute(g.sql).select(g.keys).unique().collect()
                silver = pl.scan_delta(paths["silver"])
                if "start_time" in src.columns:  # prune the scan to the file's time range
                    lo, hi = src["start_time"].min(), src["start_time"].max()
                    silver = silver.filter(pl.col("start_time").is_between(
                        lo - pl.duration(days=1), hi + pl.duration(days=1)))
                rows = pl.SQLContext(silver=silver).execute(g.sql).join(
                    touched.lazy(), on=g.keys, how="semi").collect()
                if not DeltaTable.is_deltatable(gold_paths[g.name]):
                    write_deltalake(gold_paths[g.name], to_arrow(rows), mode="append")
                    totals["gold_inserted"] += rows.height
                else:
                    pred = " AND ".join(f't."{k}" = s."{k}"' for k in g.keys)
                    m = (DeltaTable(gold_paths[g.name]).merge(to_arrow(rows), predicate=pred, source_alias="s",
                                                              target_alias="t")
                         .when_matched_update_all().when_not_matched_insert_all().execute())
                    totals["gold_inserted"] += m.get("num_target_rows_inserted", 0)
                    totals["gold_updated"] += m.get("num_target_rows_updated", 0)
        stages["gold"] += time.perf_counter() - t
    result(job="polars-delta", files=len(files), stages_s=stages, **totals)


# ---------------------------------------------------------------------------------------
# What a user would write in twenty lines: one read of every file, the same rules, silver
# appended (no de-duplication, no MERGE), gold by the model's SQL over it. Their silver
# and gold differ from medallion's whenever a key repeats (corrections): not compared.
# ---------------------------------------------------------------------------------------


def run_duckdb_simple(args):
    spec = R.load(args.config)
    files = [p for _, p in spec.discover(args.raw)]
    out, con = args.out, duckdb_connect(args.out / "_tmp")
    raw_cols = ", ".join(f'"{c.source}" AS "{c.name}"' for c in spec.columns)
    reader = duckdb_read_csv(spec, files).replace("columns=", "filename=true, columns=")
    con.execute(f"""COPY (SELECT {raw_cols}, filename AS _source_file, 0::BIGINT AS _source_line,
                                 'one' AS _batch_id, now() AS _received_at FROM {reader})
                    TO {sql_str(out / 'bronze.parquet')} (FORMAT parquet)""")
    sql, viol = duckdb_validated_sql(spec, f"read_parquet({sql_str(out / 'bronze.parquet')})")
    con.execute(f"CREATE TEMP TABLE v AS {sql}")
    raw_out = ", ".join(f'r__{i} AS "{c.name}"' for i, c in enumerate(spec.columns))
    con.execute(f"COPY (SELECT {raw_out}, _source_file, {duckdb_reasons_sql(viol)} AS rejection_reasons "
                f"FROM v WHERE _rejected) TO {sql_str(out / 'rejected.parquet')} (FORMAT parquet)")
    typed = ", ".join(f'"{c.name}"' for c in spec.columns)
    con.execute(f"COPY (SELECT {typed}, _received_at AS received_at FROM v WHERE NOT _rejected) "
                f"TO {sql_str(out / 'silver.parquet')} (FORMAT parquet)")
    con.execute(f"CREATE VIEW silver AS SELECT * FROM read_parquet({sql_str(out / 'silver.parquet')})")
    for g in spec.gold:
        con.execute(f"COPY ({g.sql}) TO {sql_str(out / (g.name + '.parquet'))} (FORMAT parquet)")
    rows, rejected = con.execute("SELECT count(*), count(*) FILTER (WHERE _rejected) FROM v").fetchone()
    shutil.rmtree(out / "_tmp", ignore_errors=True)
    result(job="duckdb-simple", files=len(files), rows=rows, accepted=rows - rejected, rejected=rejected)


def run_polars_simple(args):
    import polars as pl
    from deltalake import write_deltalake

    spec = R.load(args.config)
    files = [p for _, p in spec.discover(args.raw)]
    out = args.out
    raw = pl.concat([pl.read_csv(f, infer_schema=False, columns=[c.source for c in spec.columns])
                     .with_columns(_source_file=pl.lit(Path(f).name)) for f in files])
    raw = raw.rename({c.source: c.name for c in spec.columns if c.source != c.name}).with_columns(
        _source_line=pl.lit(0, pl.Int64), _batch_id=pl.lit("one"),
        _received_at=pl.lit(datetime.now(timezone.utc)).cast(pl.Datetime("us", "UTC")))
    write_deltalake(str(out / "bronze"), to_arrow(raw), mode="append")
    v, viol = polars_validate(spec, raw)
    rej, acc = v.filter(pl.col("_rejected")), v.filter(~pl.col("_rejected"))
    write_deltalake(str(out / "rejected"), to_arrow(rej.select(
        [pl.col(f"r__{i}").alias(c.name) for i, c in enumerate(spec.columns)]
        + ["_source_file", polars_reasons(viol).alias("rejection_reasons")])), mode="append")
    silver = acc.select([c.name for c in spec.columns] + [pl.col("_received_at").alias("received_at")])
    write_deltalake(str(out / "silver"), to_arrow(silver), mode="append")
    for g in spec.gold:
        gold = pl.SQLContext(silver=silver.lazy()).execute(g.sql).collect()
        write_deltalake(str(out / "gold" / g.name), to_arrow(gold), mode="overwrite")
    result(job="polars-simple", files=len(files), rows=v.height, accepted=acc.height, rejected=rej.height)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("job", choices=["duckdb", "duckdb-copy", "polars-delta", "duckdb-simple", "polars-simple"])
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--raw", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="fresh output directory (created)")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=False)
    {"duckdb": run_duckdb, "duckdb-copy": run_duckdb_copy, "polars-delta": run_polars_delta,
     "duckdb-simple": run_duckdb_simple, "polars-simple": run_polars_simple}[a.job](a)


if __name__ == "__main__":
    main()
