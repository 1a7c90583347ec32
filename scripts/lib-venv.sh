#!/usr/bin/env bash
# Shared by scripts/setup-python.sh (interop test readers) and bench/setup.sh (benchmark
# peers): create or reuse a venv with pinned requirements and print its python path as
# the only line on stdout (progress on stderr).
#
# The caller sets: req (requirements file), venv (venv dir), stamp_name, log_name, and
# defines check_venv (an import check run against "$vpy"). Idempotent and cheap when
# nothing changed: a stamp file records a hash of the requirements file, of the calling
# script and of the base interpreter; when it matches and check_venv passes, nothing is
# installed. Concurrent runs are serialized with flock(1) on a lock file beside the venv.
set -euo pipefail

base_python="${MEDALLION_BASE_PYTHON:-python3}"
vpy="$venv/bin/python"
stamp="$venv/$stamp_name"
caller="${BASH_SOURCE[1]}"

log() { printf '%s: %s\n' "$log_name" "$*" >&2; }

[[ -f "$req" ]] || { log "missing $req"; exit 1; }
command -v "$base_python" >/dev/null 2>&1 || { log "no '$base_python' on PATH (set MEDALLION_BASE_PYTHON)"; exit 1; }

want_stamp() {
  {
    sha256sum "$req" | cut -d' ' -f1
    sha256sum "$caller" | cut -d' ' -f1
    "$base_python" -c 'import sys; print(sys.version)'
  } | sha256sum | cut -d' ' -f1
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
