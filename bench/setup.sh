#!/usr/bin/env bash
# Creates (or reuses) the Python venv of the benchmark harness and prints the path of its
# python interpreter as the only line on stdout. All progress goes to stderr.
#
#   venv:         ${MEDALLION_BENCH_VENV:-$HOME/.cache/medallion/bench-venv}
#   interpreter:  ${MEDALLION_BASE_PYTHON:-python3}   (>= 3.10; used only to create the venv)
#   packages:     bench/requirements.txt (every package pinned)
#
# Same approach as scripts/setup-python.sh: idempotent and cheap when nothing changed (a
# stamp file in the venv records a hash of the requirements file, of this script and of the
# base interpreter; when it matches and the packages still import, nothing is installed),
# and concurrent runs are serialized with flock(1) on a lock file beside the venv.
#
#   py="$(bash bench/setup.sh)" && "$py" bench/run.py --help
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements.txt"
venv="${MEDALLION_BENCH_VENV:-$HOME/.cache/medallion/bench-venv}"
base_python="${MEDALLION_BASE_PYTHON:-python3}"
vpy="$venv/bin/python"
stamp="$venv/.medallion-bench-stamp"

log() { printf 'bench/setup: %s\n' "$*" >&2; }

[[ -f "$req" ]] || { log "missing $req"; exit 1; }
command -v "$base_python" >/dev/null 2>&1 || { log "no '$base_python' on PATH (set MEDALLION_BASE_PYTHON)"; exit 1; }

want_stamp() {
  {
    sha256sum "$req" | cut -d' ' -f1
    sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1
    "$base_python" -c 'import sys; print(sys.version)'
  } | sha256sum | cut -d' ' -f1
}

# Import check run against the venv: cheap, catches a half-broken venv.
check_venv() {
  "$vpy" - <<'PY' >&2
import duckdb, polars, deltalake, pyarrow, psutil, yaml  # noqa: F401
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot  # noqa: F401
PY
}

mkdir -p "$(dirname "$venv")"
lock="$venv.lock"
exec 9>"$lock"
if ! flock -w 900 9; then log "timed out waiting for $lock"; exit 1; fi

want="$(want_stamp)"
if [[ -x "$vpy" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && check_venv 2>/dev/null; then
  log "venv up to date: $venv"
  printf '%s\n' "$vpy"
  exit 0
fi

"$base_python" - <<'PY' || { log "Python >= 3.10 required"; exit 1; }
import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)
PY

create_venv() {
  log "creating venv $venv"
  rm -rf "$venv"
  "$base_python" -m venv "$venv"
}
install_reqs() {
  log "installing $(grep -cvE '^\s*(#|$)' "$req") pinned packages from $req"
  "$vpy" -m pip install --disable-pip-version-check --no-input --quiet -r "$req" >&2
}

start=$SECONDS
pyver='import sys; print(sys.version)'
if [[ -x "$vpy" ]] && [[ "$("$vpy" -c "$pyver" 2>/dev/null)" == "$("$base_python" -c "$pyver")" ]]; then
  log "updating venv $venv"
else
  create_venv
fi
rm -f "$stamp"
install_reqs
if ! check_venv; then
  # pip leaves a package alone when its metadata is there but its files are damaged: start over
  log "venv still broken after install; recreating it"
  create_venv
  install_reqs
  check_venv
fi
printf '%s\n' "$want" >"$stamp"
log "done in $((SECONDS - start)) s"
printf '%s\n' "$vpy"
