#!/usr/bin/env python3
"""medallion on S3 (moto's server) against the same load on local disk, with every
request counted.

Loads one N-row file (default 1,000,000) from a landing bucket into a lakehouse bucket
on a moto S3 server started here on a free loopback port, and the same file from and
into a local directory; then two runs with nothing to do (the first writes the settled
mark, the second answers from it), and a run of 20 small files (one batch each). moto logs every request it serves; the log is cut per run and each
request is classified by method and by what it touches (the Delta logs, data files, the
raw zone, medallion's own keys). Both lakehouses are checked to hold the same rows.

Run it from the interop venv (it has moto and boto3), with a release build:

  cargo build --release
  py="$(bash scripts/venv-python)"
  "$py" bench/object_store.py --medallion target/release/medallion --workdir /tmp/medallion-s3

It prints a Markdown report (for BENCHMARKS.md) and writes it as JSON next to it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_measured(cmd, env, log_path):
    """Run `cmd`; return (wall seconds, peak RSS MiB, exit code)."""
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    code = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, code


REQUEST = re.compile(r'"(GET|PUT|HEAD|POST|DELETE) (\S+) HTTP/[\d.]+" (\d{3})')
# moto colours the lines of some statuses (404, 206, ...) with terminal escapes.
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def classify(method: str, target: str) -> tuple[str, str]:
    """(operation, what) for one request line of moto's log."""
    path, _, query = target.partition("?")
    params = dict(p.split("=", 1) if "=" in p else (p, "") for p in query.split("&") if p)
    bucket = path.strip("/").split("/", 1)[0]
    if method == "GET" and "list-type" in params:
        op, key = "LIST", params.get("prefix", "").replace("%2F", "/")
    else:
        op = method
        key = path.split("/", 2)[2] if path.count("/") >= 2 else ""
    if "uploads" in params or "uploadId" in params:
        op = f"{method} (multipart)"
    if bucket == "landing":
        what = "raw zone"
    elif "/_delta_log" in key:
        what = "_delta_log"
    elif key.endswith(".parquet"):
        what = "data files"
    elif "_medallion/" in key:
        what = "medallion keys"
    else:
        what = "other"
    return op, what


def count_requests(lines):
    counts = collections.Counter()
    for line in lines:
        m = REQUEST.search(ANSI.sub("", line))
        if m:
            counts[classify(m.group(1), m.group(2))] += 1
    return counts


def config_text(lakehouse: str, raw_dir: str, options: str, raw_options: str) -> str:
    base = (REPO / "examples/readings.yaml").read_text()
    out = []
    for line in base.splitlines():
        if line.startswith("lakehouse:"):
            out.append(f"lakehouse: {lakehouse}")
            out.append(options)
        elif line.strip().startswith("raw_dir:"):
            out.append(f"  raw_dir: {raw_dir}")
            out.append(raw_options)
        else:
            out.append(line)
    return "\n".join(l for l in out if l) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--medallion", type=Path, required=True)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--small-files", type=int, default=20)
    args = p.parse_args()
    import boto3  # the interop venv has it (moto's dependency)

    med = str(args.medallion.resolve())
    wd = args.workdir
    shutil.rmtree(wd, ignore_errors=True)
    (wd / "gen").mkdir(parents=True)
    subprocess.run([med, "generate", "--rows", str(args.rows), "--files", "1", "--corrections", "0",
                    "--out", str(wd / "gen")], check=True, stdout=subprocess.DEVNULL)
    big = sorted((wd / "gen").glob("*.csv"))[0]
    subprocess.run([med, "generate", "--rows", str(args.small_files * 100), "--files",
                    str(args.small_files), "--corrections", "0", "--seed", "7",
                    "--out", str(wd / "small")], check=True, stdout=subprocess.DEVNULL)
    small = sorted((wd / "small").glob("*.csv"))

    port = free_port()
    moto_log = wd / "moto.log"
    moto = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1",
                             "-p", str(port)], stdout=open(moto_log, "wb"), stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench",
                          aws_secret_access_key=SECRET, region_name="us-east-1")
        for b in ("lake", "landing"):
            s3.create_bucket(Bucket=b)
        s3.upload_file(str(big), "landing", "meters/" + big.name)
        options = "\n".join([
            "storage_options:",
            f"  aws_endpoint_url: {endpoint}",
            '  aws_allow_http: "true"',
            "  aws_region: us-east-1",
            "  aws_access_key_id: bench",
            "  aws_secret_access_key: ${BENCH_SECRET}",
        ])
        raw_options = "\n".join("  " + l for l in options.splitlines())
        (wd / "s3").mkdir()
        (wd / "s3/config.yaml").write_text(
            config_text("s3://lake/meters", "s3://landing/meters", options, raw_options))
        (wd / "local/lakehouse/raw").mkdir(parents=True)
        (wd / "local/config.yaml").write_text(config_text("lakehouse", "raw", "", ""))
        os.link(big, wd / "local/lakehouse/raw" / big.name)
        env = dict(os.environ, BENCH_SECRET=SECRET, AWS_EC2_METADATA_DISABLED="true")

        results = {"rows": args.rows, "file_mb": round(big.stat().st_size / 2**20, 1),
                   "medallion": med, "runs": []}

        def s3_run(label):
            before = moto_log.read_text(errors="replace").count("\n")
            wall, rss, code = run_measured([med, "run", "--config", str(wd / "s3/config.yaml")],
                                           env, wd / f"s3-{label}.log")
            time.sleep(0.5)  # moto flushes its access log line by line
            lines = moto_log.read_text(errors="replace").splitlines()[before:]
            counts = count_requests(lines)
            results["runs"].append({"store": "s3 (moto)", "run": label, "wall_s": round(wall, 2),
                                    "peak_rss_mib": round(rss), "exit": code,
                                    "requests": {f"{o} {w}": n for (o, w), n in sorted(counts.items())},
                                    "total_requests": sum(counts.values())})

        def local_run(label):
            wall, rss, code = run_measured([med, "run", "--config", str(wd / "local/config.yaml")],
                                           env, wd / f"local-{label}.log")
            results["runs"].append({"store": "local disk", "run": label, "wall_s": round(wall, 2),
                                    "peak_rss_mib": round(rss), "exit": code})

        local_run(f"{args.rows:,} rows, one file")
        s3_run(f"{args.rows:,} rows, one file")
        # The first run with nothing to do checks the long way and writes the settled
        # mark; the next one answers from it.
        local_run("nothing to do, first")
        s3_run("nothing to do, first")
        local_run("nothing to do, again")
        s3_run("nothing to do, again")
        for f in small:
            s3.upload_file(str(f), "landing", "meters/small_" + f.name)
            os.link(f, wd / "local/lakehouse/raw" / ("small_" + f.name))
        local_run(f"{len(small)} files x 100 rows")
        s3_run(f"{len(small)} files x 100 rows")
        s3_run(f"nothing to do, first, {len(small) + 1} files loaded")
        s3_run(f"nothing to do, again, {len(small) + 1} files loaded")

        # Both lakehouses hold the same rows.
        checks = {}
        for table in ("bronze.readings", "silver.readings", "rejected.readings", "gold.daily_usage"):
            got = []
            for side in ("local", "s3"):
                out = subprocess.run([med, "query", f"SELECT COUNT(*) AS n FROM {table}", "--format", "json",
                                      "--config", str(wd / side / "config.yaml")],
                                     env=env, capture_output=True, text=True, check=True)
                got.append(json.loads(out.stdout.strip().splitlines()[0])["n"])
            checks[table] = got
            assert got[0] == got[1], f"{table}: local {got[0]} != s3 {got[1]}"
        results["row_counts_local_s3"] = checks
    finally:
        moto.terminate()
        moto.wait()

    out = wd / "object_store.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"| run | store | wall | peak RSS | requests |\n|---|---|---|---|---|")
    for r in results["runs"]:
        req = r.get("total_requests", "")
        print(f"| {r['run']} | {r['store']} | {r['wall_s']:.2f} s | {r['peak_rss_mib']} MiB | {req} |")
    print()
    for r in results["runs"]:
        if "requests" in r:
            print(f"{r['store']}, {r['run']}: " + ", ".join(f"{k} {v}" for k, v in r["requests"].items()))
    print(f"\nrow counts (local, s3): {results['row_counts_local_s3']}\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
