#!/usr/bin/env bash
# Proves that the common Parquet readers (pyarrow, pandas, Polars, DuckDB, PySpark) read the output
# tree as tables: builds the binary, runs `demo --rules examples/rules.toml` (so the tree has a
# findings table) and then `media` on its tree, and runs scripts/readers/check.py, which also runs
# the README's reader snippets verbatim. The readers are installed, at the versions pinned in
# scripts/readers/requirements.txt, into .venv-readers/ inside the clone; PySpark needs a Java 17
# (or newer) runtime, installed with apt when missing.
#   bash scripts/readers.sh          # CI runs it after `cargo test` (reusing its debug build)
# Set KEEP=1 to keep the demo tree (its folder is printed).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-readers
req=scripts/readers/requirements.txt
rules=examples/rules.toml
step() { echo "== readers [${SECONDS}s] $*"; }

step "virtual environment $venv (pinned readers, $req)"
started=$SECONDS
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" 2>/dev/null || {
        # Debian's python3 keeps venv in a package of its own.
        apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv "$venv"
    }
fi
# Installed once per requirements file: the copy beside the venv says which one it holds.
if ! cmp -s "$req" "$venv/requirements.txt"; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    cp "$req" "$venv/requirements.txt"
fi
echo "readers installed in $((SECONDS - started)) s: $("$venv/bin/python" -c \
    'import importlib.metadata as m; print(", ".join(f"{p} {m.version(p)}" for p in ("pyarrow", "pandas", "polars", "duckdb", "pyspark")))')"

# `.ci/run` makes the venv before `cargo test`: the Delta tests start moto_server from it.
if [ "${VENV_ONLY:-}" = 1 ]; then exit 0; fi

java_major() { java -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -1; }
if ! command -v java >/dev/null || [ "$(java_major)" -lt 17 ] 2>/dev/null || [ -z "$(java_major)" ]; then
    step "Java 17 for PySpark (apt-get install openjdk-17-jre-headless)"
    apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null
    export JAVA_HOME
    JAVA_HOME=$(ls -d /usr/lib/jvm/java-17-openjdk-* | head -1)
    export PATH="$JAVA_HOME/bin:$PATH"
fi
echo "java: $(java -version 2>&1 | head -1)"

step "cargo test --no-run (the binary that cargo test built)"
# Not `cargo build --bin`: without the dev-dependencies the features of shared crates differ, and
# cargo would rebuild delta-rs and everything above it (minutes) for the same code.
cargo test --no-run --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/wecom-archive"

tmp=$(mktemp -d)
if [ "${KEEP:-}" = 1 ]; then echo "keeping $tmp"; else trap 'rm -rf "$tmp"' EXIT; fi
# The README's snippets read wecom-archive-demo/…: the tree gets that name.
out="$tmp/wecom-archive-demo"

step "wecom-archive demo --out $out --rules $rules --json"
"$bin" demo --out "$out" --rules "$rules" --json >"$tmp/demo.json" 2>"$tmp/demo.log" || {
    cat "$tmp/demo.log" >&2; echo "readers: demo failed" >&2; exit 1
}

step "wecom-archive media (the demo corp, source = \"sim\")"
cat >"$tmp/wecom-archive.toml" <<TOML
out = "$out"
timezone = "Asia/Shanghai"

[[corp]]
corp_id = "wwdemo0000000001"
source = "sim"
sim_messages = 20000
TOML
"$bin" --quiet media --config "$tmp/wecom-archive.toml" >"$tmp/media.txt" || {
    cat "$tmp/media.txt" >&2; echo "readers: media failed" >&2; exit 1
}
cat "$tmp/media.txt"

step "scripts/readers/check.py: five readers and the README's snippets"
started=$SECONDS
# Spark binds to the loopback only, and logs only errors.
export SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON="$PWD/$venv/bin/python"
"$venv/bin/python" scripts/readers/check.py --out "$out" --demo-json "$tmp/demo.json" \
    --media-log "$tmp/media.txt" --readme README.md --rules "$rules"
echo "readers checked in $((SECONDS - started)) s"

# Delta Lake: the same demo as Delta tables, on the local disk (then OPTIMIZE and VACUUM) and on a
# local S3-compatible server (moto), each read by deltalake, Polars and an independent reader of
# _delta_log (scripts/readers/check_delta.py), which must agree and find every seq exactly once.
corp=wwdemo0000000001
messages=$("$venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["records_in"])' "$tmp/demo.json")
step "wecom-archive demo --format delta --out $tmp/delta ($messages messages), compact, vacuum"
"$bin" --quiet demo --format delta --out "$tmp/delta" --rules "$rules" --commit-every 2500 >/dev/null
"$bin" compact --out "$tmp/delta" --target-file-mb 64
"$bin" vacuum --out "$tmp/delta" --retain-hours 0
step "scripts/readers/check_delta.py $tmp/delta"
"$venv/bin/python" scripts/readers/check_delta.py "$tmp/delta" --expect "$corp=$messages" --expect-vacuumed

step "the same on S3: moto on 127.0.0.1 (scripts/s3-server.sh), demo --format delta --out s3://…"
s3dir="$tmp/s3"
eval "$(bash scripts/s3-server.sh start "$s3dir")"
trap 'bash scripts/s3-server.sh stop "$s3dir" >/dev/null 2>&1 || true; [ "${KEEP:-}" = 1 ] || rm -rf "$tmp"' EXIT
"$bin" --quiet demo --format delta --out "s3://wecom-archive-test/demo" --rules "$rules" --commit-every 2500 >/dev/null
"$venv/bin/python" scripts/readers/check_delta.py "s3://wecom-archive-test/demo" --expect "$corp=$messages"
