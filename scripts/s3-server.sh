#!/usr/bin/env bash
# A local S3-compatible server for the Delta Lake tests: moto's server mode (moto[server], pinned in
# scripts/readers/requirements.txt, run from the .venv-readers virtual environment).
#   bash scripts/s3-server.sh start DIR   # starts moto on 127.0.0.1:<free port>, creates the bucket
#                                         # ($S3_BUCKET, default wecom-archive-test), writes DIR/pid,
#                                         # DIR/port, DIR/env and prints the lines to export
#   bash scripts/s3-server.sh stop DIR    # stops the server started with that DIR
#   eval "$(bash scripts/s3-server.sh start "$dir")"   # start and export in one step
# The printed lines: AWS_ENDPOINT_URL=http://127.0.0.1:PORT AWS_ACCESS_KEY_ID=test
# AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true (moto accepts any keys).
#
# What moto 5.2.5 emulates, and what not (checked by `scripts/s3-server.sh probe DIR` on a running
# server; the self-test runs it):
# - Conditional writes ARE honoured: PutObject with `If-None-Match: *` gets 412 PreconditionFailed
#   when the key exists (the first put succeeds), and PutObject with `If-Match: <etag>` gets 412 on
#   a stale ETag. This is what object_store's PutMode::Create (delta-rs's commit of NNNN.json on S3)
#   relies on, so two writers racing for one log version are told apart as on AWS S3.
# - It is one in-memory process: every request is strongly read-after-write consistent (as AWS S3
#   has been since 2020); there is no replication, eventual consistency or throttling (no 503
#   SlowDown), no network fault; data is lost when the server stops.
# - Credentials and signatures are not checked (any key pair works); no IAM or bucket policy is
#   enforced unless moto is configured for it; path-style addressing only (virtual-hosted
#   addressing needs DNS, as Aliyun OSS requires: not covered by this server).
# - Multipart upload works and, like S3, refuses parts under 5 MiB but the last (EntityTooSmall;
#   moto's S3_UPLOAD_PART_MIN_SIZE); CompleteMultipartUpload with If-None-Match:* on an existing key
#   gets 412 too. Objects live in memory (and a temp folder for large ones): size is bounded by RAM.
# - It does not emulate Aliyun OSS or Tencent COS dialects (OSS ignores If-None-Match on its S3 API).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-$PWD/.venv-readers}
py="$venv/bin/python"

usage() { echo "usage: $0 start|stop|probe DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1 dir=$2
bucket=${S3_BUCKET:-wecom-archive-test}

env_lines() {
    echo "AWS_ENDPOINT_URL=http://127.0.0.1:$(cat "$dir/port")"
    echo "AWS_ACCESS_KEY_ID=test"
    echo "AWS_SECRET_ACCESS_KEY=test"
    echo "AWS_REGION=us-east-1"
    echo "AWS_ALLOW_HTTP=true"
}

case $cmd in
start)
    [ -x "$py" ] || { echo "s3-server: $py missing: create it (python3 -m venv .venv-readers) and pip install -r scripts/readers/requirements.txt" >&2; exit 1; }
    mkdir -p "$dir"
    if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        echo "s3-server: already running (pid $(cat "$dir/pid")); stop it first: $0 stop $dir" >&2; exit 1
    fi
    # A free port: bind to port 0 and let the kernel choose (a race with another process taking it
    # before moto binds is possible but rare; start fails loudly then).
    port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/server.log" 2>&1 &
    echo $! >"$dir/pid"
    echo "$port" >"$dir/port"
    for _ in $(seq 100); do
        if "$py" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
            break
        fi
        kill -0 "$(cat "$dir/pid")" 2>/dev/null || { cat "$dir/server.log" >&2; echo "s3-server: moto_server exited" >&2; exit 1; }
        sleep 0.1
    done
    env_lines >"$dir/env"
    env $(cat "$dir/env") "$py" -c "import boto3; boto3.client('s3').create_bucket(Bucket='$bucket')" || {
        cat "$dir/server.log" >&2; echo "s3-server: cannot create bucket $bucket on port $port" >&2; exit 1
    }
    echo "s3-server: moto on 127.0.0.1:$port (pid $(cat "$dir/pid")), bucket $bucket" >&2
    sed 's/^/export /' "$dir/env"
    ;;
stop)
    if [ -f "$dir/pid" ]; then
        pid=$(cat "$dir/pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        rm -f "$dir/pid"
        echo "s3-server: stopped (pid $pid)" >&2
    else
        echo "s3-server: no pid in $dir" >&2
    fi
    ;;
probe)
    # Conditional puts, as object_store issues them (PutObject with If-None-Match / If-Match).
    env $(cat "$dir/env") "$py" - "$bucket" <<'PY'
import sys, boto3, botocore.exceptions as ex
s3, bucket, key = boto3.client("s3"), sys.argv[1], "probe/_delta_log/00000000000000000000.json"
def put(**kw):
    try:
        r = s3.put_object(Bucket=bucket, Key=key, Body=b"{}", **kw)
        return f"200 (etag {r['ETag']})"
    except ex.ClientError as e:
        return f"{e.response['ResponseMetadata']['HTTPStatusCode']} {e.response['Error']['Code']}"
s3.delete_object(Bucket=bucket, Key=key)
first = put(IfNoneMatch="*")
second = put(IfNoneMatch="*")
etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
match = put(IfMatch=etag)
stale = put(IfMatch='"0123456789abcdef0123456789abcdef"')
print(f"probe: If-None-Match:* first put -> {first}; second put -> {second}")
print(f"probe: If-Match current etag -> {match}; If-Match stale etag -> {stale}")
ok = first.startswith("200") and second.startswith("412") and stale.startswith("412")
print("probe: conditional puts " + ("HONOURED" if ok else "NOT honoured"))
sys.exit(0 if ok else 1)
PY
    ;;
*) usage ;;
esac
