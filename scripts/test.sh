#!/usr/bin/env bash
# The full test suite: installs the Python readers the interop tests need (DuckDB, Sail
# + PySpark, Polars) into a cached venv, then runs every Rust test. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/medallion/target}"
bash scripts/setup-python.sh
MEDALLION_PYTHON="$(bash scripts/venv-python)"
export MEDALLION_PYTHON
cargo test --locked --workspace --all-targets "$@"
