#!/usr/bin/env bash
# RUSTC_WRAPPER used by scripts/fuzz.sh: adds libFuzzer's coverage instrumentation
# (SanitizerCoverage; stable rustc flags, no sanitizer) to the crate under test and to the fuzz
# crate (where the generic functions of the crate under test are instantiated), not to build
# scripts. Dependencies are compiled exactly as `cargo test` compiles them, so their builds are
# reused; they are also fuzzed upstream, and instrumenting them would cost a full rebuild.
rustc="$1"
shift
instrument=0
case "${CARGO_PKG_NAME:-}" in
    wecom-archive | wecom-archive-fuzz) instrument=1 ;;
esac
prev=
for arg in "$@"; do
    if [ "$prev" = "--crate-name" ] && [ "$arg" = "build_script_build" ]; then
        instrument=0
    fi
    prev="$arg"
done
if [ "$instrument" = 1 ]; then
    exec "$rustc" "$@" \
        -Cpasses=sancov-module \
        -Cllvm-args=-sanitizer-coverage-level=4 \
        -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
        -Cllvm-args=-sanitizer-coverage-pc-table \
        -Cllvm-args=-sanitizer-coverage-trace-compares \
        --cfg fuzzing
fi
exec "$rustc" "$@"
