#!/usr/bin/env bash
# The fleet benchmark (docs/scale-out.md, "How to size workers"): W `pull --once` workers on one
# PostgreSQL state and one set of local Delta tables pull N simulated corps of M messages each.
# Prints corps pulled per second (all corps ÷ wall time) and each worker's peak RSS.
#
#   bash scripts/fleet-bench.sh [WORKERS=3] [CORPS=1000] [MESSAGES=200]
#   FORMAT=parquet bash scripts/fleet-bench.sh …     # Parquet in one shared folder instead
#
# Needs a release build (cargo build --release) and PostgreSQL's server binaries (Debian's
# `postgresql`); runs the server as the `postgres` user when started as root. A benchmark, not a
# test: the figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=${1:-3}
CORPS=${2:-1000}
MESSAGES=${3:-200}
FORMAT=${FORMAT:-delta}
BIN=${WECOM_ARCHIVE_BIN:-target/release/wecom-archive}
[ -x "$BIN" ] || { echo "fleet-bench: $BIN not found: run cargo build --release" >&2; exit 1; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[ -x "$PGBIN/postgres" ] || { echo "fleet-bench: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/fleet-bench.XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres:postgres "$WORK"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
as_pg "$PGBIN/initdb" -D "$WORK/pg" -U postgres --auth=trust -N >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w \
  -o "-p $PORT -k $WORK -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null

mkdir -p "$WORK/run"
CONFIG="$WORK/run/wecom-archive.toml"
{
  printf 'out = "%s/run/archive"\nformat = "%s"\n' "$WORK" "$FORMAT"
  printf 'state = "postgres://postgres@127.0.0.1:%s/postgres"\ntimezone = "UTC"\n' "$PORT"
  printf '[fleet]\nlease_secs = 60\n'
  for i in $(seq 1 "$CORPS"); do
    printf '[[corp]]\ncorp_id = "wwbench%08d"\nsource = "sim"\nsim_messages = %s\n' "$i" "$MESSAGES"
  done
} > "$CONFIG"
# The tables and the schema exist before the clock starts.
"$BIN" status --config "$CONFIG" >/dev/null

echo "fleet-bench: $WORKERS workers, $CORPS corps x $MESSAGES messages, $FORMAT tables on the local disk, PostgreSQL state"
start=$(date +%s.%N)
for w in $(seq 1 "$WORKERS"); do
  /usr/bin/time -f "%M %e" -o "$WORK/time.$w" \
    "$BIN" pull --once --json --config "$CONFIG" > "$WORK/out.$w.json" 2> "$WORK/err.$w" &
done
wait
end=$(date +%s.%N)
python3 - "$WORK" "$WORKERS" "$CORPS" "$MESSAGES" "$start" "$end" <<'PY'
import json, sys
work, workers, corps, messages, start, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
wall = end - start
pulled, held, written = {}, 0, 0
for w in range(1, workers + 1):
    report = json.load(open(f"{work}/out.{w}.json"))
    rss_kib, secs = open(f"{work}/time.{w}").read().split()
    ok = [c for c in report["corps"] if c["outcome"] == "ok"]
    written += sum(c["written"] + c["dead_lettered"] for c in ok)
    held += sum(1 for c in report["corps"] if c["outcome"] == "held")
    for c in report["corps"]:
        if c["outcome"] not in ("ok", "held"):
            sys.exit(f"worker {w}: corp {c['corp_id']}: {c['outcome']}: {c.get('error')}")
    n = sum(1 for c in ok if c["written"] + c["dead_lettered"] > 0)
    print(f"worker {w}: pulled {n} corps, peak RSS {int(rss_kib) / 1024:.0f} MiB, {float(secs):.1f} s")
assert written == corps * messages, f"{written} records written, want {corps * messages}"
print(f"all: {corps} corps ({written} records) in {wall:.1f} s = {corps / wall:.1f} corps/s, "
      f"{written / wall:.0f} records/s; {held} skips of a held corp")
PY
