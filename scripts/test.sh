#!/usr/bin/env bash
# The full test suite: installs the Python readers the interop tests need (DuckDB, Sail
# + PySpark, Polars) and the S3 emulator (moto) into a cached venv, the Azure emulator
# (Azurite) with npm and Debian's Chromium (the report test's browser), then runs every
# Rust test. The object-store tests start and stop the
# emulators themselves, on free loopback ports. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/medallion/target}"
bash scripts/setup-python.sh
MEDALLION_PYTHON="$(bash scripts/venv-python)"
export MEDALLION_PYTHON
MEDALLION_AZURITE="$(bash scripts/setup-emulators.sh)"
export MEDALLION_AZURITE
MEDALLION_CHROMIUM="$(bash scripts/setup-chromium.sh)"
export MEDALLION_CHROMIUM
# No Docker engine here: prove the image's build stage has every path it needs.
cargo fetch --locked
python3 scripts/check-docker-context.py
cargo test --locked --workspace --all-targets "$@"
