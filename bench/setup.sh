#!/usr/bin/env bash
# Creates (or reuses) the Python venv of the benchmark harness and prints the path of its
# python interpreter as the only line on stdout. All progress goes to stderr.
#
#   venv:         ${MEDALLION_BENCH_VENV:-$HOME/.cache/medallion/bench-venv}
#   packages:     bench/requirements.txt (every package pinned)
#
#   py="$(bash bench/setup.sh)" && "$py" bench/run.py --help
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements.txt"
venv="${MEDALLION_BENCH_VENV:-$HOME/.cache/medallion/bench-venv}"
stamp_name=".medallion-bench-stamp"
log_name="bench/setup"

# Import check run against the venv: cheap, catches a half-broken venv.
check_venv() {
  "$vpy" - <<'PY' >&2
import duckdb, polars, deltalake, pyarrow, psutil, yaml  # noqa: F401
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot  # noqa: F401
PY
}

# shellcheck source=scripts/lib-venv.sh
source "$here/../scripts/lib-venv.sh"
