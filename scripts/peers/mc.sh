#!/usr/bin/env bash
# mc.sh installs the MinIO client (github.com/minio/mc@latest) into
# $DEDUPFN_TOOLS/bin/mc, for tests and docs that configure bucket
# notifications the way a user would (`mc event add`). About 45 MB; an
# existing binary is reused.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TOOLS=${DEDUPFN_TOOLS:-$ROOT/.tools}
BIN=$TOOLS/bin/mc

if [[ -x $BIN ]]; then
	echo "mc: $BIN already installed"
	exit 0
fi

command -v go >/dev/null || { echo "mc: go not found on PATH" >&2; exit 1; }
mkdir -p "$TOOLS/bin"
# Build outside the repo so its go.mod does not constrain mc's dependencies.
cd "$TOOLS"
GOBIN=$TOOLS/bin go install github.com/minio/mc@latest
[[ -x $BIN ]] || { echo "mc: go install did not produce $BIN" >&2; exit 1; }
echo "mc: installed $BIN"
