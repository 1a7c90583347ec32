"""Run read_variant.py for every reader x variant (one subprocess each, sequential);
write results/readers.json and print a compact matrix."""
import json, os, subprocess, sys
ROOT = os.path.dirname(os.path.abspath(__file__))
PY = "/root/.cache/medallion/venv/bin/python"
READERS = sys.argv[1].split(",") if len(sys.argv) > 1 else ["medallion", "duckdb", "polars", "deltalake", "sail"]
VARIANTS = sys.argv[2].split(",") if len(sys.argv) > 2 else ["control", "inline", "file", "inline_padded"]
os.makedirs(os.path.join(ROOT, "results"), exist_ok=True)
res = {}
for v in VARIANTS:
    for r in READERS:
        p = subprocess.run([PY, os.path.join(ROOT, "read_variant.py"), r, os.path.join(ROOT, "exp", v)],
                           capture_output=True, text=True, timeout=900)
        try:
            o = json.loads(p.stdout.strip().splitlines()[-1])
        except Exception:
            o = {"crashed": True, "rc": p.returncode, "stderr_tail": p.stderr[-2000:], "stdout_tail": p.stdout[-1000:]}
        o["stderr_tail"] = p.stderr[-1500:]
        res.setdefault(v, {})[r] = o
        print(f"== {v:14s} {r:10s}", json.dumps({k: ({kk: vv for kk, vv in c.items() if kk not in ('error_full', 'present')} if isinstance(c, dict) else c) for k, c in o.get("checks", {}).items()}) if "checks" in o else o, flush=True)
suffix = os.environ.get("SUFFIX", "")
with open(os.path.join(ROOT, "results", f"readers{suffix}.json"), "w") as f:
    json.dump(res, f, indent=1, default=str)
