#!/usr/bin/env bash
# Creates (or reuses) the Python venv used by medallion's interop tests and prints the path
# of its python interpreter as the only line on stdout. All progress goes to stderr.
#
#   venv:         ${MEDALLION_VENV:-$HOME/.cache/medallion/venv}
#   interpreter:  ${MEDALLION_BASE_PYTHON:-python3}   (>= 3.10; used only to create the venv)
#   packages:     scripts/requirements-interop.txt (every package pinned)
#
# See scripts/lib-venv.sh for how it stays idempotent and safe to run concurrently.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements-interop.txt"
venv="${MEDALLION_VENV:-$HOME/.cache/medallion/venv}"
stamp_name=".medallion-interop-stamp"
log_name="setup-python"

# Import check run against the venv: cheap (~0.5 s), catches a half-broken venv.
check_venv() {
  "$vpy" - <<'PY' >&2
import os, sys
import duckdb, duckdb_extension_delta, duckdb_extension_httpfs, duckdb_extension_azure, polars, deltalake, pyarrow, pysail.spark, pyspark.sql.connect.session  # noqa: F401
import boto3, moto.server, azure.storage.blob  # noqa: F401
for mod, name in ((duckdb_extension_delta, "delta"), (duckdb_extension_httpfs, "httpfs"), (duckdb_extension_azure, "azure")):
    ext = os.path.join(os.path.dirname(mod.__file__), "extensions",
                       "v" + duckdb.__version__, name + ".duckdb_extension")
    if not os.path.isfile(ext):
        sys.exit(f"{name} extension not found at {ext}")
PY
}

# shellcheck source=scripts/lib-venv.sh
source "$here/lib-venv.sh"
