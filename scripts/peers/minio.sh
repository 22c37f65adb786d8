#!/usr/bin/env bash
# minio.sh installs the MinIO server (github.com/minio/minio@latest) into
# $DEDUPFN_TOOLS/bin/minio. internal/testutil/peers starts it for tests that
# need a real S3 store publishing bucket notifications to Kafka. Building it
# takes about 3 minutes and 150 MB; an existing binary is reused.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TOOLS=${DEDUPFN_TOOLS:-$ROOT/.tools}
BIN=$TOOLS/bin/minio

if [[ -x $BIN ]]; then
	echo "minio: $BIN already installed"
	exit 0
fi

command -v go >/dev/null || { echo "minio: go not found on PATH" >&2; exit 1; }
mkdir -p "$TOOLS/bin"
# Build outside the repo so its go.mod does not constrain MinIO's dependencies.
cd "$TOOLS"
GOBIN=$TOOLS/bin go install github.com/minio/minio@latest
[[ -x $BIN ]] || { echo "minio: go install did not produce $BIN" >&2; exit 1; }
echo "minio: installed $BIN"
