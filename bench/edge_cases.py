#!/usr/bin/env python3
"""Rule semantics, line by line: medallion vs the benchmark's DuckDB and Polars peers.

    py="$(bash bench/setup.sh)"
    "$py" bench/edge_cases.py --medallion target/release/medallion [--workdir DIR]

Writes one raw file of edge-case rows (odd timestamp spellings, decimals, whitespace,
null tokens, Unicode digits, ...; every row has its own natural key), ingests it with
`medallion run` and with bench/peers.py (duckdb, polars-delta), and compares per line:
rejected or not, the (rule, column) pairs, and the typed values kept in silver. Known
differences (documented in bench/README.md) are listed as such; anything else is a bug in
the peers (or in medallion). Exit status 1 when an unexpected difference is found.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import rules as R  # noqa: E402

BASE = {"customer_id": "C000001", "start_time": None, "end_time": None, "usage_kwh": "1.000",
        "reading_type": "actual"}

# (what, column, value[, known difference]) -- the known ones are chrono leniencies the
# peers do not mirror (see rules.py).
CASES = [
    ("plain", None, None),
    ("ts lowercase t and z", "start_time", "2026-01-01t{h}:00:00z"),
    ("ts space and Z", "start_time", "2026-01-01 {h}:00:00Z"),
    ("ts space and offset", "start_time", "2026-01-01 {h}:00:00+00:00"),
    ("ts naive space", "start_time", "2026-01-01 {h}:00:00"),
    ("ts naive T", "start_time", "2026-01-01T{h}:00:00"),
    ("ts naive no seconds", "start_time", "2026-01-01 {h}:00"),
    ("ts T no seconds", "start_time", "2026-01-01T{h}:00"),
    ("ts 9+ fraction digits", "start_time", "2026-01-01T{h}:00:00.1234567891Z"),
    ("ts naive fraction", "start_time", "2026-01-01 {h}:00:00.25"),
    ("ts offset -01:30", "start_time", "2026-01-01T{h}:00:00-01:30"),
    ("ts offset no colon", "start_time", "2026-01-01T{h}:00:00+0100"),
    ("ts offset +24:00", "start_time", "2026-01-01T{h}:00:00+24:00"),
    ("ts hour 24", "start_time", "2026-01-01T24:00:00Z"),
    ("ts Feb 30", "start_time", "2026-02-30T{h}:00:00Z"),
    ("ts one-digit month", "start_time", "2026-1-01 {h}:00:00", "chrono's strftime parser takes 1-digit fields"),
    ("ts two spaces", "start_time", "2026-01-01  {h}:00:00", "chrono's strftime parser takes any run of spaces"),
    ("ts leap second", "start_time", "2026-01-01T{h}:59:60Z", "chrono accepts a leap second :60"),
    ("ts trailing text", "start_time", "2026-01-01T{h}:00:00Zx"),
    ("dec 5.", "usage_kwh", "5."),
    ("dec .5", "usage_kwh", ".5"),
    ("dec +7", "usage_kwh", "+7"),
    ("dec -0", "usage_kwh", "-0"),
    ("dec -0.000", "usage_kwh", "-0.000"),
    ("dec -0.001", "usage_kwh", "-0.001"),
    ("dec leading zeros", "usage_kwh", "0000000000500.000"),
    ("dec 500.000", "usage_kwh", "500.000"),
    ("dec 500.001", "usage_kwh", "500.001"),
    ("dec 4 decimals 0", "usage_kwh", "1.0000"),
    ("dec exponent", "usage_kwh", "1e2"),
    ("dec too big", "usage_kwh", "1234567890"),
    ("dec 9 int digits", "usage_kwh", "123456789.5"),
    ("dec dot", "usage_kwh", "."),
    ("dec sign only", "usage_kwh", "-"),
    ("dec arabic digits", "usage_kwh", "\u0661.\u0662"),
    ("dec underscore", "usage_kwh", "1_0"),
    ("dec tab around", "usage_kwh", "\t2.5\t"),
    ("dec nbsp around", "usage_kwh", "\u00a02.5\u3000"),
    ("dec NULL token padded", "usage_kwh", " NULL "),
    ("dec null lowercase", "usage_kwh", "null"),
    ("cust arabic digits", "customer_id", "C\u0661\u0662\u0663\u0664\u0665\u0666"),
    ("cust lowercase", "customer_id", "c000001"),
    ("cust 7 digits", "customer_id", "C0000011"),
    ("cust NA", "customer_id", "NA"),
    ("cust padded", "customer_id", "  C000002  "),
    ("type Actual", "reading_type", "Actual"),
    ("type padded", "reading_type", " estimated "),
    ("type NULL", "reading_type", "NULL"),
    ("type null lowercase", "reading_type", "null"),
    ("type empty", "reading_type", ""),
    ("end equals start", "end_time", "SAME"),
    ("end before start, bad meter", "end_time", "BEFORE"),
]


def write_corpus(path):
    lines = ["customer_id,meter_id,start_time,end_time,usage_kwh,reading_type"]
    meta = {}
    for i, case in enumerate(CASES):
        what, col, val = case[:3]
        h = f"{i % 24:02d}"
        day = 1 + i // 24
        row = dict(BASE, meter_id=f"M{90000000 + i:08d}",
                   start_time=f"2026-01-{day:02d}T{h}:00:00Z", end_time=f"2026-01-{day:02d}T{h}:59:59Z")
        if col:
            v = val.replace("{h}", h).replace("2026-01-01", f"2026-01-{day:02d}")
            if val == "SAME":
                v = row["start_time"]
            elif val == "BEFORE":
                v = f"2025-12-31T{h}:00:00Z"
                row["meter_id"] = "M1"
            row[col] = v
            if col == "start_time":
                row["end_time"] = f"2026-01-{day + 1:02d}T00:00:00Z"  # after any start of that day
        q = lambda s: '"' + s.replace('"', '""') + '"' if any(c in s for c in ',"\n') else s  # noqa: E731
        lines.append(",".join(q(row[c]) for c in ["customer_id", "meter_id", "start_time", "end_time",
                                                   "usage_kwh", "reading_type"]))
        meta[i + 2] = case
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return meta


def outcomes(con, rejected_rel, silver_rel):
    rej = {}
    if rejected_rel:
        for line, rule, column in con.execute(
                f"SELECT _source_line, r.rule, r.column FROM (SELECT _source_line, unnest(rejection_reasons) AS r "
                f"FROM {rejected_rel})").fetchall():
            rej.setdefault(int(line), set()).add((rule, column))
    sil = {}
    if silver_rel:
        for line, st, et, u, t in con.execute(
                f"SELECT _source_line, epoch_us(start_time), epoch_us(end_time), usage_kwh::VARCHAR, reading_type "
                f"FROM {silver_rel}").fetchall():
            sil[int(line)] = (st, et, u, t)
    return rej, sil


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--medallion", type=Path, required=True)
    p.add_argument("--workdir", type=Path)
    p.add_argument("--config", type=Path, default=REPO / "examples/readings.yaml")
    a = p.parse_args()
    import duckdb
    from deltalake import DeltaTable

    work = a.workdir or Path(tempfile.mkdtemp(prefix="medallion-edge-"))
    if work.exists():
        shutil.rmtree(work)
    raw = work / "raw"
    raw.mkdir(parents=True)
    meta = write_corpus(raw / "edge.csv")
    spec = R.load(a.config)
    # medallion
    lh = work / "medallion"
    shutil.copytree(raw, lh / "raw")
    cfg = work / "medallion.yaml"
    cfg.write_text(re.sub(r"(?m)^lakehouse:.*$", f'lakehouse: "{lh}"', a.config.read_text()))
    r = subprocess.run([str(a.medallion), "run", "--config", str(cfg)], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"medallion run failed:\n{r.stdout}{r.stderr}")
    results = {}
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    for name, d in (("medallion", lh),):
        for t in ("silver", "rejected"):
            path = d / t / spec.source
            if DeltaTable.is_deltatable(str(path)):
                con.register(f"{name}_{t}", DeltaTable(str(path)).to_pyarrow_dataset())
        results[name] = outcomes(con, f"{name}_rejected", f"{name}_silver")
    for job in ("duckdb", "polars-delta"):
        out = work / job
        r = subprocess.run([sys.executable, str(HERE / "peers.py"), job, "--config", str(a.config), "--raw", str(raw),
                            "--out", str(out)], capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"{job} failed:\n{r.stdout}{r.stderr}")
        key = job.replace("-", "_")
        if job == "duckdb":
            rel_r = f"read_parquet('{out / 'rejected.parquet'}')" if (out / "rejected.parquet").exists() else None
            rel_s = f"read_parquet('{out / 'silver.parquet'}')"
        else:
            rel_r = rel_s = None
            for t in ("silver", "rejected"):
                path = out / t / spec.source
                if DeltaTable.is_deltatable(str(path)):
                    con.register(f"{key}_{t}", DeltaTable(str(path)).to_pyarrow_dataset())
                    if t == "silver":
                        rel_s = f"{key}_silver"
                    else:
                        rel_r = f"{key}_rejected"
        results[job] = outcomes(con, rel_r, rel_s)
    unexpected = 0
    fmt = lambda rej, sil, line: ("rejected " + ",".join(sorted(f"{r}({c})" if c else r for r, c in rej[line]))  # noqa: E731
                                  if line in rej else f"kept {sil.get(line)}")
    print(f"{'line':>4}  {'case':<30} medallion")
    for line, case in sorted(meta.items()):
        m = fmt(*results["medallion"], line)
        diffs = [(job, fmt(*results[job], line)) for job in ("duckdb", "polars-delta") if fmt(*results[job], line) != m]
        print(f"{line:>4}  {case[0]:<30} {m}")
        for job, o in diffs:
            known = case[3] if len(case) > 3 else None
            print(f"{'':>36}{job}: {o}   <-- {'known: ' + known if known else 'UNEXPECTED'}")
            unexpected += 0 if known else 1
    print(f"\n{len(meta)} lines; {unexpected} unexpected difference(s); work dir {work}")
    sys.exit(1 if unexpected else 0)


if __name__ == "__main__":
    main()
