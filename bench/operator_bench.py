#!/usr/bin/env python3
"""The operator's read commands on a lakehouse with many loaded files.

Generates N small files (default 10,000 files of 100 readings: `medallion generate
--rows 1000000 --files 10000`), loads them with one `medallion run`, then times `status`,
`status --json`, `history gold.daily_usage --json` and `report` (median of --repeat runs
after a warm-up) and records each one's peak RSS (GNU time). Prints a Markdown table and
checks that `status --json` counts every file as loaded and that `_medallion.runs` holds
one row per file of the run.

    python3 bench/operator_bench.py --medallion "${CARGO_TARGET_DIR:-target}/release/medallion" \\
        --workdir /tmp/medallion-operator

Options: --files (10000), --rows (100 per file), --repeat (5), --reuse (keep the loaded
lakehouse of an earlier call in the workdir and only time the commands).
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed(cmd, cwd):
    """Wall seconds and peak RSS (KiB) of one command, which must succeed."""
    start = time.monotonic()
    out = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *cmd], cwd=cwd, capture_output=True, text=True
    )
    wall = time.monotonic() - start
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    rss = int(out.stderr.strip().splitlines()[-1])
    return wall, rss, out.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--medallion", required=True)
    ap.add_argument("--workdir", default="/tmp/medallion-operator")
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--rows", type=int, default=100, help="readings per file")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--reuse", action="store_true")
    a = ap.parse_args()
    binary = str(Path(a.medallion).resolve())
    work = Path(a.workdir)
    if not a.reuse:
        shutil.rmtree(work, ignore_errors=True)
        (work / "lakehouse" / "raw").mkdir(parents=True)
        shutil.copy(REPO / "examples/readings.yaml", work / "config.yaml")
        subprocess.run(
            [binary, "generate", "--rows", str(a.files * a.rows), "--files", str(a.files),
             "--corrections", "0", "--out", str(work / "lakehouse" / "raw")],
            check=True, capture_output=True,
        )
        wall, rss, _ = timed([binary, "run", "--quiet"], work)
        print(f"loaded {a.files} files in {wall:.2f} s, peak {rss / 1024:.0f} MiB")
    commands = {
        "status": ["status"],
        "status --json": ["status", "--json"],
        "history gold.daily_usage --json": ["history", "gold.daily_usage", "--json"],
        "report": ["report", "--out", str(work / "report.html")],
    }
    rows = []
    for name, args in commands.items():
        timed([binary, *args], work)  # warm-up
        runs = [timed([binary, *args], work) for _ in range(a.repeat)]
        walls = [r[0] for r in runs]
        rows.append((name, statistics.median(walls), min(walls), max(walls), max(r[1] for r in runs)))
        if name == "status --json":
            doc = json.loads(runs[-1][2])
            loaded = doc["files"]["loaded"]
            assert loaded == a.files, f"status counts {loaded} loaded files, not {a.files}"
            assert not doc["files"]["pending"], doc["files"]["pending"][:5]
    _, _, out = timed(
        [binary, "query", "SELECT COUNT(*) AS n FROM _medallion.runs WHERE file IS NOT NULL", "--format", "csv"],
        work,
    )
    assert out.split()[-1] == str(a.files), out
    print(f"\n{a.files} files loaded; {a.repeat} timed runs each after a warm-up\n")
    print("| command | median s | min s | max s | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|")
    for name, med, lo, hi, rss in rows:
        print(f"| `{name}` | {med:.3f} | {lo:.3f} | {hi:.3f} | {rss / 1024:.0f} |")


if __name__ == "__main__":
    main()
