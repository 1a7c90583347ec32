#!/usr/bin/env bash
# Reproduce everything from scratch under /tmp/dv-research (about 3-5 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")"
PY=/root/.cache/medallion/venv/bin/python
M=/root/.cache/medallion/target/release/medallion
rm -rf base gen exp ops results
mkdir -p base gen results
sed 's#^lakehouse: lakehouse#lakehouse: /tmp/dv-research/base/lake#' /work/main/examples/readings.yaml > base/readings.yaml
$M generate --rows 2000 --files 2 --corrections 0 --out gen
mkdir -p base/lake/raw
cp gen/readings_00001.csv base/lake/raw/ && $M run --config base/readings.yaml   # silver v1: file 1 (999 rows)
cp gen/readings_00002.csv base/lake/raw/ && $M run --config base/readings.yaml   # silver v2: file 2 (999 rows)
$PY make_variants.py                      # exp/{control,inline,file,inline_padded}
$PY run_readers.py | tee results/readers.txt   # results/readers.json
$PY ops.py                                # results/ops.json
for v in inline file; do for r in polars sail; do
  $PY read_variant.py $r ops/${v}__deltalake_checkpoint_only > results/checkpoint_only-$v-$r.json 2>/dev/null
done; done
echo done
