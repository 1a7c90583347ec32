#!/usr/bin/env python3
"""Query time on the consumption zone before and after `medallion optimize`.

Loads generated hourly readings as daily deliveries (the generated rows split into one
raw file per day, one batch per file, so every table, gold included, gets a small file
per day), then times typical gold queries (and one silver query) in DuckDB through its
delta extension: as loaded, after `medallion optimize` (compaction), after
`medallion optimize --zorder` (silver and gold in Z-order over their keys, at their
8 MiB target size) and after `medallion optimize --zorder --target-size 1MiB` (smaller
Z-ordered files, so a lookup by key skips more of them). Each phase's lakehouse is kept
(WORKDIR/phase-N) and the four are timed round-robin, so a busy moment of the machine
costs them alike. Each query is timed twice: through `delta_scan` (the Delta table, as a
user queries it: every query reads the log) and through `read_parquet` over the data
files of the table's current version (the same rows: the cost of the files alone).
Reports the median time of each query, the tables' file counts and the ratios, and checks
that every query returns the same rows each time.

    "$(bash scripts/venv-python)" bench/optimize.py \\
        --medallion "${CARGO_TARGET_DIR:-target}/release/medallion" --workdir /tmp/medallion-optimize

Options: --rows (1,000,000), --customers (500: with 1-3 meters each, 1 M hourly readings
cover about 42 days, so 42 daily files; a run compacts a table by itself once it has more
than 64 small files, so a lakehouse fed small batches has at most that many), --days
(60: the most days the readings may cover), --repeat (15 timed runs per query, after one
warm-up), --seed (42), --build release|debug (the binary's profile, when its path does
not say), --reuse (restore the lakehouse as loaded by an earlier call, kept as
WORKDIR/lakehouse.loaded, instead of generating and loading again: the load can run while
the machine is busy and the timings later), --time-only (time the phases an earlier call
kept, without loading or optimizing), --json PATH (write the numbers). The DuckDB
delta extension is loaded by path from the duckdb-extension-delta package (no download).
Query times depend on the Parquet files, not on how fast medallion wrote them, so a debug
build's numbers count too (only the load and optimize wall times are slower).
"""

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

QUERIES = {
    "gold: one customer's days": (
        "gold",
        "SELECT usage_date, total_kwh FROM {gold} WHERE customer_id = 'C000042' ORDER BY usage_date",
    ),
    "gold: top customers over 3 days": (
        "gold",
        "SELECT customer_id, SUM(total_kwh) AS kwh FROM {gold} "
        "WHERE usage_date BETWEEN DATE '2026-01-10' AND DATE '2026-01-12' "
        "GROUP BY customer_id ORDER BY kwh DESC, customer_id LIMIT 10",
    ),
    "gold: daily totals (full scan)": (
        "gold",
        "SELECT usage_date, SUM(total_kwh), SUM(reading_count) FROM {gold} "
        "GROUP BY usage_date ORDER BY usage_date",
    ),
    "silver: one customer's readings": (
        "silver",
        "SELECT COUNT(*), SUM(usage_kwh) FROM {silver} WHERE customer_id = 'C000042'",
    ),
}


READERS = ("delta_scan", "read_parquet")

PHASES = (
    ("as loaded", None),
    ("optimize", ["optimize"]),
    ("optimize --zorder", ["optimize", "--zorder"]),
    ("optimize --zorder --target-size 1MiB", ["optimize", "--zorder", "--target-size", "1MiB"]),
)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_bin = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release" / "medallion"
    p.add_argument("--medallion", type=Path, default=default_bin)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/medallion-optimize"))
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--customers", type=int, default=500)
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--reuse", action="store_true")
    p.add_argument("--time-only", action="store_true")
    p.add_argument("--build", choices=["release", "debug"],
                   help="the binary's profile, when its path does not say")
    p.add_argument("--json", type=Path)
    return p.parse_args()


def medallion(args, *argv: str) -> tuple[float, str]:
    """Run the binary in the workdir; returns (wall seconds, stdout)."""
    cmd = [str(args.medallion), *argv, "--config", str(args.workdir / "config.yaml")]
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=args.workdir, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return wall, out.stdout


def prepare(args) -> float | None:
    """A fresh lakehouse holding the generated readings, one batch per file; returns
    the wall time of the load. With --reuse, the lakehouse as first loaded is restored
    instead (from the copy kept beside it) and `None` returned."""
    lake, kept = args.workdir / "lakehouse", args.workdir / "lakehouse.loaded"
    if args.reuse and kept.is_dir():
        for entry in lake.iterdir():
            if entry.name != "raw":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        shutil.copytree(kept, lake, symlinks=True, dirs_exist_ok=True)
        return None
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    raw = lake / "raw"
    raw.mkdir(parents=True)
    config = (REPO / "examples/readings.yaml").read_text()
    (args.workdir / "config.yaml").write_text(config + "\nbatches:\n  max_files: 1\n")
    generated = args.workdir / "generated"
    medallion(args, "generate", "--rows", str(args.rows), "--customers", str(args.customers),
              "--days", str(args.days), "--files", "1", "--corrections", "0",
              "--seed", str(args.seed), "--out", str(generated))
    split_by_day(generated / "readings_00001.csv", raw)
    shutil.rmtree(generated)
    wall, _ = medallion(args, "run")
    shutil.copytree(lake, kept, symlinks=True, ignore=shutil.ignore_patterns("raw"))
    return wall


def split_by_day(path: Path, raw: Path) -> None:
    """Write the readings of `path` as one file per day of their start time, named by
    the day, in their order; a row whose start time is not a date goes with the row
    before it."""
    outs, day = {}, None
    with path.open(newline="") as f:
        rows = csv.reader(f)
        header = next(rows)
        for row in rows:
            start = row[2] if len(row) > 2 else ""
            if day is None or (start[:4].isdigit() and start[10:11] in ("T", " ")):
                day = start[:10]
            if day not in outs:
                out = (raw / f"readings_{day}.csv").open("w", newline="")
                outs[day] = (out, csv.writer(out, lineterminator="\n"))
                outs[day][1].writerow(header)
            outs[day][1].writerow(row)
    for out, _ in outs.values():
        out.close()


def file_counts(lake: Path) -> dict[str, tuple[int, int]]:
    """(data files, bytes) of the current version of each table."""
    from deltalake import DeltaTable

    out = {}
    for name, rel in (("bronze", "bronze/readings"), ("silver", "silver/readings"),
                      ("rejected", "rejected/readings"), ("gold", "gold/daily_usage")):
        actions = DeltaTable(str(lake / rel)).get_add_actions(flatten=True)
        sizes = actions.column("size_bytes").to_pylist()
        out[name] = (len(sizes), sum(sizes))
    return out


def duckdb_connection():
    import duckdb
    import duckdb_extension_delta

    ext = os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions",
                       "v" + duckdb.__version__, "delta.duckdb_extension")
    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    con.execute(f"LOAD '{ext}'")
    return con


def scans(lake: Path, reader: str) -> dict[str, str]:
    """The table expressions of gold and silver in `lake`: `delta_scan` (the Delta
    table, its log read by every query), or `read_parquet` over the data files of its
    current version (the same rows, without the log)."""
    from deltalake import DeltaTable

    out = {}
    for zone, rel in (("gold", "gold/daily_usage"), ("silver", "silver/readings")):
        if reader == "delta_scan":
            out[zone] = f"delta_scan('{lake / rel}')"
        else:
            files = ", ".join(f"'{f}'" for f in DeltaTable(str(lake / rel)).file_uris())
            out[zone] = f"read_parquet([{files}])"
    return out


def time_queries(args, lakes: list[Path], reader: str) -> list[dict[str, dict]]:
    """Per lakehouse copy, per query: the median wall time (ms) and the rows. The
    copies are timed round-robin (each repetition runs every query on every copy in
    turn), so a busy moment of the machine costs them all alike."""
    cons = [duckdb_connection() for _ in lakes]
    tables = [scans(lake, reader) for lake in lakes]
    out = [{} for _ in lakes]
    for name, (_, sql) in QUERIES.items():
        sqls = [sql.format(**t) for t in tables]
        times = [[] for _ in lakes]
        for i, con in enumerate(cons):  # warm-up, and the rows to compare
            out[i][name] = {"rows": [list(map(str, r)) for r in con.execute(sqls[i]).fetchall()]}
        for _ in range(args.repeat):
            for i, con in enumerate(cons):
                start = time.perf_counter()
                con.execute(sqls[i]).fetchall()
                times[i].append((time.perf_counter() - start) * 1000)
        for i in range(len(lakes)):
            out[i][name]["median_ms"] = statistics.median(times[i])
    return out


def optimize_phases(args) -> list[dict]:
    """Run the phases, keeping each one's lakehouse as WORKDIR/phase-N (without the raw
    zone) and what it did in WORKDIR/phases.json; with --time-only, read those instead."""
    record = args.workdir / "phases.json"
    if args.time_only:
        return json.loads(record.read_text())
    phases = []
    for i, (label, argv) in enumerate(PHASES):
        wall = None
        if argv:
            wall, report = medallion(args, *argv)
            print(report, file=sys.stderr)
        lake = args.workdir / f"phase-{i}"
        shutil.rmtree(lake, ignore_errors=True)
        shutil.copytree(args.workdir / "lakehouse", lake, symlinks=True,
                        ignore=shutil.ignore_patterns("raw"))
        phases.append({"phase": label, "optimize_s": wall, "files": file_counts(lake)})
    record.write_text(json.dumps(phases))
    return phases


def build_kind(args) -> str:
    if args.build:
        return args.build
    parts = args.medallion.resolve().parts
    return "release" if "release" in parts else "debug" if "debug" in parts else "unknown"


def main():
    args = parse_args()
    load_s = None if args.time_only else prepare(args)
    args.files = len(list((args.workdir / "lakehouse" / "raw").glob("*.csv")))
    phases = optimize_phases(args)
    lakes = [args.workdir / f"phase-{i}" for i in range(len(phases))]
    for reader in READERS:
        for p, timed in zip(phases, time_queries(args, lakes, reader)):
            p[reader] = timed
        for p in phases[1:]:
            for q in QUERIES:
                if p[reader][q]["rows"] != phases[0][reader][q]["rows"]:
                    sys.exit(f"{q}: other rows after {p['phase']}")

    load = "earlier" if load_s is None else f"in {load_s:.1f} s"
    print(f"medallion {build_kind(args)} build; {args.rows:,} rows in {args.files} "
          f"files loaded one file per batch ({load}); DuckDB median of {args.repeat}\n")
    print("| phase | optimize s | files bronze / silver / rejected / gold | silver MiB | gold MiB |")
    print("|---|---:|---|---:|---:|")
    for p in phases:
        f = p["files"]
        counts = " / ".join(str(f[t][0]) for t in ("bronze", "silver", "rejected", "gold"))
        took = "–" if p["optimize_s"] is None else f"{p['optimize_s']:.1f}"
        print(f"| {p['phase']} | {took} | {counts} | {f['silver'][1] / 2**20:.1f} "
              f"| {f['gold'][1] / 2**20:.2f} |")
    for reader in READERS:
        print(f"\n| {reader}: query | as loaded ms | compacted ms | Z-ordered ms | "
              "Z-ordered, 1 MiB files ms | loaded ÷ compacted | loaded ÷ Z-ordered | "
              "loaded ÷ Z-ordered 1 MiB |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for q in QUERIES:
            ms = [p[reader][q]["median_ms"] for p in phases]
            ratios = " | ".join(f"{ms[0] / m:.1f}×" for m in ms[1:])
            print(f"| {q} | " + " | ".join(f"{m:.1f}" for m in ms) + f" | {ratios} |")
    if args.json:
        for p in phases:
            for reader in READERS:
                for q in p[reader].values():
                    q.pop("rows")
        args.json.write_text(json.dumps({"rows": args.rows, "files": args.files,
                                         "build": build_kind(args), "load_s": load_s,
                                         "phases": phases}, indent=2))


if __name__ == "__main__":
    main()
