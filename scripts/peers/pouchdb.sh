#!/usr/bin/env bash
# pouchdb.sh installs pouchdb-server 4.2.0 (a CouchDB-API server) into
# $DEDUPFN_TOOLS/pouchdb. internal/testutil/peers starts it in memory for
# the CouchDB index tests. An existing install is reused.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TOOLS=${DEDUPFN_TOOLS:-$ROOT/.tools}
DIR=$TOOLS/pouchdb
BIN=$DIR/node_modules/.bin/pouchdb-server
VERSION=4.2.0

if [[ -x $BIN ]] && grep -q "\"version\": \"$VERSION\"" "$DIR/node_modules/pouchdb-server/package.json" 2>/dev/null; then
	echo "pouchdb: $BIN already installed"
	exit 0
fi
command -v npm >/dev/null || { echo "pouchdb: npm not found on PATH" >&2; exit 1; }
mkdir -p "$DIR"
# --ignore-scripts: the in-memory adapter needs no native leveldown/sqlite3 build.
npm install --prefix "$DIR" --no-audit --no-fund --ignore-scripts "pouchdb-server@$VERSION"
[[ -x $BIN ]] || { echo "pouchdb: npm did not produce $BIN" >&2; exit 1; }
echo "pouchdb: installed $BIN"
