#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of untrusted input (fuzz/, libFuzzer via
# libfuzzer-sys, on the stable toolchain).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each target (default: all) for SECONDS (default 60) from the seeds that fuzz/seeds.py
# builds out of fixtures/, and fails when any target crashes. A crashing input is kept in
# fuzz/artifacts/TARGET/ (replay it: the target binary with the file as its argument).
# FUZZ_JOBS (default 1) targets run at a time. Dependencies are built as `cargo test` builds
# them (same target dir), so after the tests only the crate itself is rebuilt, instrumented.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

secs=${1:-60}
shift || true
all=(decrypt_data rsa_unwrap callback dump_reader message_parse)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi
jobs=${FUZZ_JOBS:-1}

command -v cargo >/dev/null || { echo "fuzz: cargo not found (install the Rust toolchain)" >&2; exit 1; }
# libfuzzer-sys compiles libFuzzer (C++); the seeds script is Python.
command -v c++ >/dev/null || { apt-get update -qq && apt-get install -y -qq build-essential; }
command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
echo "== building the fuzz targets (instrumented: wecom-archive)"
RUSTC_WRAPPER="$root/fuzz/rustc-wrapper.sh" cargo build --locked --manifest-path fuzz/Cargo.toml --bins
bin=$CARGO_TARGET_DIR/debug

python3 fuzz/seeds.py

dict_of() {
    case $1 in
        callback) echo fuzz/dict/xml.dict ;;
        dump_reader | message_parse) echo fuzz/dict/json.dict ;;
        *) echo "" ;;
    esac
}

run_one() {
    local t=$1 log=fuzz/artifacts/$1.log dict
    dict=$(dict_of "$t")
    mkdir -p "fuzz/artifacts/$t" "fuzz/corpus/$t"
    "$bin/$t" "fuzz/corpus/$t" ${dict:+-dict=$dict} -max_total_time="$secs" -max_len=8192 \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1
}

failed=()
pids=()
names=()
flush() {
    local i
    for i in "${!pids[@]}"; do
        if ! wait "${pids[$i]}"; then failed+=("${names[$i]}"); fi
    done
    pids=()
    names=()
}
for t in "${targets[@]}"; do
    [ -x "$bin/$t" ] || { echo "fuzz: no target $t (have: ${all[*]})" >&2; exit 2; }
    echo "== fuzzing $t for ${secs}s"
    run_one "$t" &
    pids+=($!)
    names+=("$t")
    [ ${#pids[@]} -ge "$jobs" ] && flush
done
flush

printf '%-14s %8s %12s %8s\n' target seconds executions crashes
for t in "${targets[@]}"; do
    log=fuzz/artifacts/$t.log
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    crashes=$(find "fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
    printf '%-14s %8s %12s %8s\n' "$t" "$secs" "${execs:-?}" "$crashes"
done
if [ ${#failed[@]} -gt 0 ]; then
    for t in "${failed[@]}"; do
        echo "fuzz: $t FAILED; the end of fuzz/artifacts/$t.log:" >&2
        tail -n 40 "fuzz/artifacts/$t.log" >&2
    done
    exit 1
fi
echo "fuzz: no crash in ${#targets[@]} targets"
