#!/usr/bin/env bash
# Self-test of scripts/readers/check_delta.py, without the Rust Delta sink: selftest_delta.py writes
# Delta tables in the pipeline's layout with the Python deltalake package (partitions, txn per
# corp, checkpoints, OPTIMIZE, vacuum) on local disk and on a local S3-compatible server (moto,
# scripts/s3-server.sh), checks that check_delta.py accepts them, and that it rejects corrupted
# copies with a message naming the table/corp/seq. DuckDB's delta_scan reads the clean tables from
# a second venv (.venv-duckdb-delta, scripts/readers/requirements-duckdb-delta.txt).
#   bash scripts/readers/selftest_delta.sh     # KEEP=1 keeps the tables (the folder is printed)
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=.venv-readers
req=scripts/readers/requirements.txt
started=$SECONDS
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
# Installed once per requirements file, as scripts/readers.sh does.
if ! cmp -s "$req" "$venv/requirements.txt"; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    cp "$req" "$venv/requirements.txt"
fi
echo "readers installed in $((SECONDS - started)) s: $("$venv/bin/python" -c \
    'import importlib.metadata as m; print(", ".join(f"{p} {m.version(p)}" for p in ("deltalake", "polars", "pyarrow", "duckdb", "moto")))')"

# DuckDB's delta_scan: its extensions from PyPI exist only for an older DuckDB than check.py's, so
# they live in a venv of their own (DUCKDB_DELTA=0 skips it).
duckvenv=.venv-duckdb-delta
duckreq=scripts/readers/requirements-duckdb-delta.txt
if [ "${DUCKDB_DELTA:-1}" != 0 ]; then
    [ -x "$duckvenv/bin/python" ] || python3 -m venv "$duckvenv"
    if ! cmp -s "$duckreq" "$duckvenv/requirements.txt"; then
        "$duckvenv/bin/pip" install --quiet --disable-pip-version-check -r "$duckreq"
        cp "$duckreq" "$duckvenv/requirements.txt"
    fi
    export DUCKDB_DELTA_PYTHON="$PWD/$duckvenv/bin/python"
    echo "duckdb for delta_scan: $("$duckvenv/bin/python" -c 'import duckdb; print(duckdb.__version__)') ($duckvenv)"
fi

tmp=$(mktemp -d)
server="$tmp/s3-server"
cleanup() {
    bash scripts/s3-server.sh stop "$server" 2>/dev/null || true
    if [ "${KEEP:-}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

eval "$(bash scripts/s3-server.sh start "$server")"
bash scripts/s3-server.sh probe "$server"
"$venv/bin/python" scripts/readers/selftest_delta.py "$tmp/local" "s3://${S3_BUCKET:-wecom-archive-test}/selftest"
echo "selftest_delta.sh: OK in $((SECONDS - started)) s"
