"""Maintenance / write operations on the DV-patched tables (exp/inline, exp/file).

Usage: python ops.py            (after make_variants.py; writes results/ops.json)

Each operation runs on a fresh copy ops/<variant>__<op> of exp/<variant>; afterwards the table is
read back with medallion query (deltalake-rs 1.1.3), DuckDB delta_scan and deltalake-python scan(),
and the commit(s) the operation wrote are summarised (add/remove paths, deletionVector, numRecords).
"""
import datetime as dt, glob, json, os, shutil, subprocess, sys, time
from decimal import Decimal

ROOT = os.path.dirname(os.path.abspath(__file__))
PY = "/root/.cache/medallion/venv/bin/python"
M = "/root/.cache/medallion/target/release/medallion"
os.environ.setdefault("TZ", "UTC")
RESULTS = {}


def first_line(s):
    s = (s or "").strip()
    return s.splitlines()[0][:400] if s else ""


def clone(variant, op):
    src = os.path.join(ROOT, "exp", variant)
    dst = os.path.join(ROOT, "ops", f"{variant}__{op}")
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    for name in ("readings.yaml", "expected.json"):
        p = os.path.join(dst, name)
        s = open(p).read().replace(src + "/", dst + "/")
        open(p, "w").write(s)
    return dst, os.path.join(dst, "lake", "silver", "readings")


def log_versions(tdir):
    return sorted(int(os.path.basename(f)[:20]) for f in glob.glob(os.path.join(tdir, "_delta_log", "*.json")))


def summarize_commits(tdir, after):
    out = {}
    for v in log_versions(tdir):
        if v <= after:
            continue
        acts = []
        for l in open(os.path.join(tdir, "_delta_log", f"{v:020d}.json")):
            d = json.loads(l)
            k = next(iter(d))
            a = d[k]
            if k in ("add", "remove"):
                acts.append({k: a["path"], "deletionVector": a.get("deletionVector"), "dataChange": a.get("dataChange"),
                             "numRecords": json.loads(a["stats"]).get("numRecords") if a.get("stats") else None})
            elif k == "commitInfo":
                acts.append({"commitInfo": a.get("operation"), "engine": a.get("engineInfo")})
            elif k == "protocol":
                acts.append({"protocol": a})
            elif k == "metaData":
                acts.append({"metaData.configuration": a.get("configuration")})
            else:
                acts.append({k: a})
        out[v] = acts
    return out


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    return {"cmd": " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd), "rc": p.returncode,
            "stdout": p.stdout[-3000:], "stderr": p.stderr[-3000:]}


def read_back(vdir):
    """counts + deleted-key presence from three readers (subprocesses of read_variant.py)."""
    res = {}
    for r in ("medallion", "duckdb", "deltalake"):
        p = subprocess.run([PY, os.path.join(ROOT, "read_variant.py"), r, vdir], capture_output=True, text=True, timeout=600)
        try:
            o = json.loads(p.stdout.strip().splitlines()[-1])["checks"]
        except Exception:
            res[r] = {"crashed": p.stderr[-800:]}
            continue
        if r == "medallion":
            res[r] = {"count": o["count_star"].get("n", o["count_star"].get("error")),
                      "sum": o["scan_count_sum"].get("s", o["scan_count_sum"].get("error")),
                      "deleted_keys_present": o["deleted_key_lookup"].get("present", o["deleted_key_lookup"].get("error"))}
        elif r == "duckdb":
            res[r] = {"count": o["count_star"].get("n", o["count_star"].get("error")),
                      "sum": o["full_read"].get("sum_usage_kwh", o["full_read"].get("error")),
                      "deleted_keys_present": o["deleted_key_lookup"].get("present", o["deleted_key_lookup"].get("error"))}
        else:
            res[r] = {"scan_rows": o["scan"].get("rows", o["scan"].get("error")),
                      "sum": o["scan"].get("sum_usage_kwh"), "deleted_keys_present_count": o["scan"].get("deleted_keys_present"),
                      "deletion_vectors": o["deletion_vectors"]}
    return res


def op_medallion_optimize(variant, zorder=False):
    vdir, tdir = clone(variant, "medallion_optimize" + ("_zorder" if zorder else ""))
    before = log_versions(tdir)[-1]
    cmd = [M, "optimize", "silver.readings", "--config", os.path.join(vdir, "readings.yaml")] + (["--zorder"] if zorder else [])
    r = run(cmd)
    return {"run": r, "commits": summarize_commits(tdir, before), "read_back": read_back(vdir),
            "files_in_table_dir": sorted(os.listdir(tdir))}


CORR_ROWS = [  # (customer, meter, new usage): 2 live rows of the DV'd file, 1 row of the other file,
    ("C100000", "M10000001", "9.999"),   # row 1 of file 1 (live)
    ("C100001", "M10000002", "8.888"),   # row 2 of file 1 (live)
    ("C100000", "M10000000", "6.666"),   # row 0 of file 1: DELETED by the DV -> must come back once, new value
]


def op_medallion_run_corrections(variant):
    """A later medallion upsert (deltalake-rs 1.1.3 MERGE, copy-on-write) touching the DV'd file."""
    vdir, tdir = clone(variant, "medallion_run_corrections")
    raw = os.path.join(vdir, "lake", "raw")
    # one row of file 2 too
    f2 = open(os.path.join(raw, "readings_00002.csv")).read().splitlines()
    c2 = f2[1].split(",")
    rows = CORR_ROWS + [(c2[0], c2[1], "7.777")]
    lines = ["customer_id,meter_id,start_time,end_time,usage_kwh,reading_type"]
    for c, m, u in rows:
        st = "2026-01-01T00:00:00Z" if m != c2[1] else c2[2]
        en = "2026-01-01T01:00:00Z" if m != c2[1] else c2[3]
        lines.append(f"{c},{m},{st},{en},{u},actual")
    open(os.path.join(raw, "readings_zz_corrections.csv"), "w").write("\n".join(lines) + "\n")
    before = log_versions(tdir)[-1]
    r = run([M, "run", "--config", os.path.join(vdir, "readings.yaml")])
    exp = json.load(open(os.path.join(vdir, "expected.json")))
    old = {}
    import pyarrow.parquet as pq
    for p in glob.glob(os.path.join(ROOT, "base", "lake", "silver", "readings", "*.parquet")):
        for rr in pq.read_table(p, columns=["meter_id", "start_time", "usage_kwh"]).to_pylist():
            old[(rr["meter_id"], rr["start_time"].strftime("%Y-%m-%dT%H:%M:%SZ"))] = rr["usage_kwh"]
    expected_sum = Decimal(exp["expected_sum_usage_kwh"])
    for c, m, u in rows:
        st = "2026-01-01T00:00:00Z" if m != c2[1] else c2[2]
        if m == "M10000000":
            expected_sum += Decimal(u)          # deleted row re-inserted
        else:
            expected_sum += Decimal(u) - old[(m, st)]
    rb = read_back(vdir)
    q = run([M, "query", "--config", os.path.join(vdir, "readings.yaml"), "--format", "json",
             "SELECT meter_id, CAST(usage_kwh AS VARCHAR) AS u FROM silver.readings WHERE meter_id IN "
             "('M10000000','M10000001','M10000002','M10000005','M10000007','M10000501') AND start_time = TIMESTAMP '2026-01-01 00:00:00' ORDER BY 1"])
    return {"run": r, "corrections": rows, "expected_count": exp["expected_rows"] + 1,
            "expected_sum": str(expected_sum),
            "expected_note": "M10000000 (deleted by the DV) re-inserted once with 6.666; M10000005/7/501 stay deleted",
            "commits": summarize_commits(tdir, before), "read_back": rb, "rows_of_interest": q["stdout"] or q["stderr"]}


def op_deltalake_compact(variant):
    vdir, tdir = clone(variant, "deltalake_compact")
    before = log_versions(tdir)[-1]
    code = ("import json,sys; from deltalake import DeltaTable; "
            "print(json.dumps(DeltaTable(sys.argv[1]).optimize.compact(), default=str))")
    r = run([PY, "-c", code, tdir])
    return {"run": r, "commits": summarize_commits(tdir, before), "read_back": read_back(vdir)}


def op_deltalake_checkpoint(variant):
    vdir, tdir = clone(variant, "deltalake_checkpoint")
    code = "import sys; from deltalake import DeltaTable; DeltaTable(sys.argv[1]).create_checkpoint(); print('ok')"
    r = run([PY, "-c", code, tdir])
    ck = sorted(glob.glob(os.path.join(tdir, "_delta_log", "*.checkpoint*.parquet")))
    info = {}
    if ck:
        code2 = ("import json,sys,pyarrow.parquet as pq; t=pq.read_table(sys.argv[1]); "
                 "print(json.dumps({'schema_add_fields':[f.name for f in t.schema.field('add').type] if 'add' in t.column_names else None,"
                 "'adds':[{'path':a['path'],'deletionVector':a.get('deletionVector'),'stats':(a.get('stats') or '')[:40]} for a in t.column('add').to_pylist() if a],"
                 "'protocol':[p for p in t.column('protocol').to_pylist() if p]}, default=str))")
        info = json.loads(run([PY, "-c", code2, ck[-1]])["stdout"])
    last_ckpt = open(os.path.join(tdir, "_delta_log", "_last_checkpoint")).read() if os.path.exists(os.path.join(tdir, "_delta_log", "_last_checkpoint")) else None
    # a variant directory whose newest state comes from the checkpoint only: hide the JSON commits
    # the checkpoint covers, so readers MUST take the DV from the checkpoint Parquet
    ck_only_dir, ck_only_t = clone(variant, "deltalake_checkpoint_only")
    shutil.copy(ck[-1], os.path.join(ck_only_t, "_delta_log"))
    shutil.copy(os.path.join(tdir, "_delta_log", "_last_checkpoint"), os.path.join(ck_only_t, "_delta_log"))
    v = int(os.path.basename(ck[-1])[:20])
    for i in range(0, v + 1):
        os.remove(os.path.join(ck_only_t, "_delta_log", f"{i:020d}.json"))
    return {"run": r, "checkpoint_files": [os.path.basename(c) for c in ck], "_last_checkpoint": last_ckpt,
            "checkpoint_content": info, "read_back_with_json": read_back(vdir),
            "checkpoint_only_dir": os.path.relpath(ck_only_dir, ROOT),
            "read_back_checkpoint_only": read_back(ck_only_dir),
            "files_left_in_log_of_checkpoint_only": sorted(os.listdir(os.path.join(ck_only_t, "_delta_log")))}


def op_medallion_checkpoint(variant):
    """Let medallion (deltalake-rs 1.1.3) write its own checkpoint: silver has
    delta.checkpointInterval=10, so 7 more `medallion run`s (one 1-row CSV each, new keys in
    February, so the MERGE should not touch the DV'd file) reach version 10."""
    vdir, tdir = clone(variant, "medallion_checkpoint")
    raw = os.path.join(vdir, "lake", "raw")
    before = log_versions(tdir)[-1]
    runs = []
    k = 0
    while log_versions(tdir)[-1] < 10 and k < 12:
        k += 1
        with open(os.path.join(raw, f"readings_zz_extra_{k:02d}.csv"), "w") as f:
            f.write("customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n")
            f.write(f"C100000,M10000000,2026-02-{k:02d}T00:00:00Z,2026-02-{k:02d}T01:00:00Z,1.000,actual\n")
        r = run([M, "run", "--config", os.path.join(vdir, "readings.yaml")])
        runs.append({"rc": r["rc"], "silver_line": [l for l in r["stdout"].splitlines() if "silver" in l]})
    ck = sorted(glob.glob(os.path.join(tdir, "_delta_log", "*.checkpoint*.parquet")))
    info = {}
    if ck:
        code2 = ("import json,sys,pyarrow.parquet as pq; t=pq.read_table(sys.argv[1]); "
                 "print(json.dumps({'schema_add_fields':[f.name for f in t.schema.field('add').type] if 'add' in t.column_names else None,"
                 "'adds':[{'path':a['path'],'deletionVector':a.get('deletionVector')} for a in t.column('add').to_pylist() if a],"
                 "'protocol':[p for p in t.column('protocol').to_pylist() if p]}, default=str))")
        info = json.loads(run([PY, "-c", code2, ck[-1]])["stdout"])
    rb = read_back(vdir)
    return {"runs": runs, "versions": log_versions(tdir)[-1], "checkpoint_files": [os.path.basename(c) for c in ck],
            "checkpoint_content": info, "expected_count": json.load(open(os.path.join(vdir, "expected.json")))["expected_rows"] + k,
            "read_back": rb}


def vacuum_py(tdir, full):
    code = ("import json,sys; from deltalake import DeltaTable; "
            "print(json.dumps(DeltaTable(sys.argv[1]).vacuum(retention_hours=0, dry_run=True, "
            "enforce_retention_duration=False, full=sys.argv[2]=='1')))")
    r = run([PY, "-c", code, tdir, "1" if full else "0"])
    try:
        return sorted(os.path.basename(x) for x in json.loads(r["stdout"]))
    except Exception:
        return {"error": first_line(r["stderr"]), "stderr": r["stderr"][-1500:]}


def backdate(tdir, days=10):
    t = time.time() - days * 86400
    for f in os.listdir(tdir):
        p = os.path.join(tdir, f)
        if os.path.isfile(p):
            os.utime(p, (t, t))


def op_vacuum(variant):
    """Dry-run vacuums: (1) DV live in an add; (2) after medallion optimize (DV only in a remove)."""
    vdir, tdir = clone(variant, "vacuum")
    res = {"files_in_table_dir": sorted(os.listdir(tdir))}
    res["deltalake_py_vacuum_live_dv"] = vacuum_py(tdir, full=False)
    res["deltalake_py_vacuum_full_live_dv"] = vacuum_py(tdir, full=True)
    backdate(tdir)
    res["medallion_vacuum_dry_run_live_dv(files backdated 10d, --retain-hours 24)"] = run(
        [M, "vacuum", "--config", os.path.join(vdir, "readings.yaml"), "--dry-run", "--retain-hours", "24"])["stdout"]
    # now compact with medallion: the DV'd file and its DV become unreferenced
    before = log_versions(tdir)[-1]
    res["medallion_optimize"] = run([M, "optimize", "silver.readings", "--config", os.path.join(vdir, "readings.yaml")])["stdout"]
    res["optimize_commit"] = summarize_commits(tdir, before)
    res["deltalake_py_vacuum_after_optimize"] = vacuum_py(tdir, full=False)
    res["deltalake_py_vacuum_full_after_optimize"] = vacuum_py(tdir, full=True)
    # medallion vacuum: backdate the remove's deletionTimestamp is not possible without editing the log;
    # so only the file mtimes are backdated (orphan detection) and --retain-hours 24 applies
    backdate(tdir)
    res["medallion_vacuum_dry_run_after_optimize"] = run(
        [M, "vacuum", "--config", os.path.join(vdir, "readings.yaml"), "--dry-run", "--retain-hours", "24"])["stdout"]
    return res


def op_vacuum_effects(variant):
    """Real (non-dry-run) vacuums on copies, to name the files each deletes and see what readers
    do afterwards. (a) medallion vacuum (deltalake-rs 1.1.3, VacuumMode::Full, --retain-hours 24,
    files backdated 10 days) with the DV live; (b) the same after medallion optimize; (c)
    deltalake-python full vacuum (retention 0) with the DV live."""
    res = {}
    # (a)
    vdir, tdir = clone(variant, "vacuum_effects_medallion_live")
    backdate(tdir)
    b = set(os.listdir(tdir))
    r = run([M, "vacuum", "--config", os.path.join(vdir, "readings.yaml"), "--retain-hours", "24"])
    res["a_medallion_vacuum_live_dv"] = {"stdout": r["stdout"], "rc": r["rc"], "deleted": sorted(b - set(os.listdir(tdir))),
                                          "read_back": read_back(vdir)}
    # (b)
    vdir, tdir = clone(variant, "vacuum_effects_medallion_after_optimize")
    run([M, "optimize", "silver.readings", "--config", os.path.join(vdir, "readings.yaml")])
    backdate(tdir)
    b = set(os.listdir(tdir))
    r = run([M, "vacuum", "--config", os.path.join(vdir, "readings.yaml"), "--retain-hours", "24"])
    res["b_medallion_vacuum_after_optimize"] = {"stdout": r["stdout"], "rc": r["rc"],
                                                "deleted": sorted(b - set(os.listdir(tdir))), "read_back": read_back(vdir)}
    # (c)
    vdir, tdir = clone(variant, "vacuum_effects_py_full_live")
    b = set(os.listdir(tdir))
    code = ("import json,sys; from deltalake import DeltaTable; "
            "print(json.dumps(DeltaTable(sys.argv[1]).vacuum(retention_hours=0, dry_run=False, "
            "enforce_retention_duration=False, full=True)))")
    r = run([PY, "-c", code, tdir])
    res["c_deltalake_py_full_vacuum_live_dv"] = {"stdout": r["stdout"], "stderr": r["stderr"][-800:],
                                                 "deleted": sorted(b - set(os.listdir(tdir))), "read_back": read_back(vdir)}
    # (d) python full vacuum, retention 24h, files backdated 10 days (same setting as medallion's)
    vdir, tdir = clone(variant, "vacuum_effects_py_full_live_24h")
    backdate(tdir)
    code = ("import json,sys; from deltalake import DeltaTable; "
            "print(json.dumps(DeltaTable(sys.argv[1]).vacuum(retention_hours=24, dry_run=True, "
            "enforce_retention_duration=False, full=True)))")
    r = run([PY, "-c", code, tdir])
    res["d_deltalake_py_full_vacuum_dry_live_dv_24h_backdated"] = {"stdout": r["stdout"], "stderr": r["stderr"][-800:]}
    return res


def op_medallion_gold_recompute(variant):
    """A medallion run that inserts a NEW key for customer C100003 on 2026-01-01 (whose meter
    M10000005 was deleted by the DV): the MERGE should leave the DV'd file alone, and gold must
    recompute (C100003, 2026-01-01) from silver; gold must then equal silver's own aggregate,
    i.e. exclude the DV-deleted row."""
    vdir, tdir = clone(variant, "medallion_gold_recompute")
    cfg = os.path.join(vdir, "readings.yaml")
    with open(os.path.join(vdir, "lake", "raw", "readings_zz_new.csv"), "w") as f:
        f.write("customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n")
        f.write("C100003,M10000004,2026-01-01T05:00:00Z,2026-01-01T06:00:00Z,2.000,actual\n")
    before = log_versions(tdir)[-1]
    r = run([M, "run", "--config", cfg])

    def q(sql):
        p = run([M, "query", "--config", cfg, "--format", "json", sql])
        return [json.loads(l) for l in p["stdout"].splitlines() if l.strip()] or p["stderr"]
    return {"run_rc": r["rc"], "silver_commit": summarize_commits(tdir, before),
            "gold": q("SELECT customer_id, CAST(usage_date AS VARCHAR) d, CAST(total_kwh AS VARCHAR) t, reading_count FROM gold.daily_usage WHERE customer_id='C100003' AND usage_date = DATE '2026-01-01'"),
            "silver_aggregate": q("SELECT CAST(SUM(usage_kwh) AS VARCHAR) t, count(*) n, string_agg(meter_id, ',') m FROM silver.readings WHERE customer_id='C100003' AND CAST(start_time AS DATE) = DATE '2026-01-01'"),
            "physical_rows_incl_deleted": "C100003 2026-01-01 has M10000004, M10000005 (DV-deleted), M10000006 in file 1"}


if __name__ == "__main__":
    ops = sys.argv[1:] or ["medallion_optimize", "medallion_optimize_zorder", "medallion_run_corrections",
                           "deltalake_compact", "deltalake_checkpoint", "medallion_checkpoint", "vacuum", "vacuum_effects", "medallion_gold_recompute"]
    fns = {"medallion_optimize": op_medallion_optimize,
           "medallion_optimize_zorder": lambda v: op_medallion_optimize(v, zorder=True),
           "medallion_run_corrections": op_medallion_run_corrections,
           "deltalake_compact": op_deltalake_compact,
           "deltalake_checkpoint": op_deltalake_checkpoint,
           "vacuum": op_vacuum,
           "medallion_checkpoint": op_medallion_checkpoint,
           "vacuum_effects": op_vacuum_effects,
           "medallion_gold_recompute": op_medallion_gold_recompute}
    for op in ops:
        for variant in ("inline", "file"):
            try:
                RESULTS.setdefault(op, {})[variant] = fns[op](variant)
            except Exception as e:  # noqa
                import traceback
                RESULTS.setdefault(op, {})[variant] = {"script_error": traceback.format_exc()[-2000:]}
            print(f"done {op} {variant}", flush=True)
    os.makedirs(os.path.join(ROOT, "results"), exist_ok=True)
    name = "ops.json" if not sys.argv[1:] else "ops-" + "-".join(sys.argv[1:]) + ".json"
    with open(os.path.join(ROOT, "results", name), "w") as f:
        json.dump(RESULTS, f, indent=1, default=str)
