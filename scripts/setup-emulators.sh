#!/usr/bin/env bash
# Installs (or reuses) the Azure Blob emulator that medallion's object-store tests start, and
# prints the path of its `azurite-blob` command as the only line on stdout. The S3 emulator
# (moto's server mode) comes with the Python venv (scripts/setup-python.sh).
#
#   where:    ${MEDALLION_NODE_DIR:-$HOME/.cache/medallion/node}
#   package:  azurite 3.35.0 (3.35.x runs on Debian's node 20; 3.37 needs node 22)
#   node:     Debian's `nodejs` and `npm`, installed with apt-get when missing
set -euo pipefail

version="3.35.0"
dir="${MEDALLION_NODE_DIR:-$HOME/.cache/medallion/node}"
bin="$dir/node_modules/.bin/azurite-blob"
log() { echo "setup-emulators: $*" >&2; }

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "node or npm missing; installing Debian's nodejs and npm"
  if [[ $(id -u) -eq 0 ]]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >&2
fi

installed() {
  [[ -x "$bin" ]] && node -e "process.exit(require('$dir/node_modules/azurite/package.json').version === '$version' ? 0 : 1)" 2>/dev/null
}
if ! installed; then
  mkdir -p "$dir"
  # One installer at a time (CI and a developer's shell may start together).
  exec 9>"$dir/.lock"
  flock 9
  if ! installed; then
    log "installing azurite@$version into $dir"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error "azurite@$version" >&2)
  fi
fi
installed || { log "azurite $version is not usable at $bin"; exit 1; }
printf '%s\n' "$bin"
