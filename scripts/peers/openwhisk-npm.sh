#!/usr/bin/env bash
# openwhisk-npm.sh installs the official OpenWhisk JavaScript client
# (npm package "openwhisk", 3.21.x) into $DEDUPFN_TOOLS/openwhisk-js. The
# owtest package uses it to validate its in-test controller against the
# documented REST contract. Idempotent: does nothing if the pinned version
# is already installed.
set -euo pipefail

VERSION=3.21.9
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TOOLS=${DEDUPFN_TOOLS:-$ROOT/.tools}
DEST=$TOOLS/openwhisk-js
PKG=$DEST/node_modules/openwhisk/package.json

if [[ -f $PKG ]] && grep -q "\"version\": \"$VERSION\"" "$PKG"; then
	echo "openwhisk-npm: openwhisk@$VERSION already in $DEST"
	exit 0
fi

command -v npm >/dev/null || { echo "openwhisk-npm: npm not found on PATH" >&2; exit 1; }
mkdir -p "$DEST"
npm install --no-audit --no-fund --prefix "$DEST" "openwhisk@$VERSION"
grep -q "\"version\": \"$VERSION\"" "$PKG" || { echo "openwhisk-npm: install did not produce openwhisk@$VERSION" >&2; exit 1; }
echo "openwhisk-npm: installed openwhisk@$VERSION in $DEST"
