#!/usr/bin/env bash
# Checks our native DecryptData against the official SDK (libWeWorkFinanceSdk_C.so), taken from
# the PyPI wheel `wecom-audit` (pinned, sha256-checked). Nothing of the SDK is committed.
#
#   scripts/sdk-conformance.sh            # download if needed, then run tests/sdk_oracle.rs
#                                         # and tests/sdk_source.rs
#   WECOM_SDK=/path/to/lib.so scripts/sdk-conformance.sh   # use an SDK you already have
set -euo pipefail
cd "$(dirname "$0")/.."

WHEEL_VERSION=0.1.6
SDK_SHA256=79ced4de6b18d5e96a21cd06f325794dc8957f8925120538d56d4ce827d3dfd0
SDK_DIR=${WECOM_SDK_DIR:-.sdk}

if [ -z "${WECOM_SDK:-}" ]; then
  WECOM_SDK="$SDK_DIR/libWeWorkFinanceSdk_C.so"
  if [ ! -f "$WECOM_SDK" ]; then
    echo "sdk-conformance: fetching wecom-audit==$WHEEL_VERSION from PyPI" >&2
    mkdir -p "$SDK_DIR/wheel"
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
      --platform manylinux2014_x86_64 --python-version 3.11 \
      "wecom-audit==$WHEEL_VERSION" -d "$SDK_DIR/wheel"
    python3 - "$SDK_DIR" <<'PY'
import glob, sys, zipfile
d = sys.argv[1]
wheel = glob.glob(d + "/wheel/wecom_audit-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    data = z.read("wecom_audit/C_sdk/libWeWorkFinanceSdk_C.so")
open(d + "/libWeWorkFinanceSdk_C.so", "wb").write(data)
PY
  fi
fi

echo "$SDK_SHA256  $WECOM_SDK" | sha256sum --check --quiet || {
  echo "sdk-conformance: $WECOM_SDK is not the SDK build the spec was verified against" >&2
  exit 1
}

export WECOM_SDK="$(cd "$(dirname "$WECOM_SDK")" && pwd)/$(basename "$WECOM_SDK")"
# The SDK's bundled protobuf logs "libprotobuf ERROR ... invalid UTF-8" when fed corrupted
# key info (it decrypts on regardless): expected, filtered out.
# pipefail: the exit status is cargo's, not grep's.
cargo test --features sdk-oracle --test sdk_oracle -- --test-threads=1 --nocapture 2>&1 \
  | { grep -v 'libprotobuf ERROR' || true; }
# The `sdk` source (child-process worker, retries, errors) against the real library, with a
# closed loopback port as its proxy: never reaches WeCom.
cargo test --features sdk-oracle --test sdk_source 2>&1
