#!/usr/bin/env bash
# minio.sh installs the MinIO server (github.com/minio/minio) and client
# (github.com/minio/mc) into $DEDUPFN_TOOLS/bin. internal/testutil/peers
# starts the server for tests that need a real S3 store publishing bucket
# notifications; the e2e tests run `mc` the way the README tells users to.
# First build: about 3 minutes and 200 MB; existing binaries are reused.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TOOLS=${DEDUPFN_TOOLS:-$ROOT/.tools}

# go_tool NAME MODULE installs MODULE@latest as $TOOLS/bin/NAME unless present.
go_tool() {
	local name=$1 module=$2 bin=$TOOLS/bin/$1
	if [[ -x $bin ]]; then
		echo "$name: $bin already installed"
		return
	fi
	command -v go >/dev/null || { echo "$name: go not found on PATH" >&2; exit 1; }
	mkdir -p "$TOOLS/bin"
	# Build outside the repo so its go.mod does not constrain the tool's dependencies.
	(cd "$TOOLS" && GOBIN=$TOOLS/bin go install "$module@latest")
	[[ -x $bin ]] || { echo "$name: go install did not produce $bin" >&2; exit 1; }
	echo "$name: installed $bin"
}

go_tool minio github.com/minio/minio
go_tool mc github.com/minio/mc
