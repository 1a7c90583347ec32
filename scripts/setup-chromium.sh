#!/usr/bin/env bash
# Installs (or reuses) Debian's headless-capable Chromium, which the report test renders
# `medallion report`'s page in, and prints the path of its `chromium` command as the only
# line on stdout.
set -euo pipefail
log() { echo "setup-chromium: $*" >&2; }

if ! command -v chromium >/dev/null; then
  log "installing Debian's chromium"
  if [[ $(id -u) -eq 0 ]]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >&2
fi
command -v chromium
