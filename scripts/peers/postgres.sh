#!/usr/bin/env bash
# postgres.sh installs PostgreSQL from Debian's packages when initdb is
# missing. internal/testutil/peers starts a private cluster of its own
# (initdb + postgres in a temp dir, on a free port) for the PostgreSQL
# index tests; no system service is used. An existing install is reused.
set -euo pipefail

if compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null; then
	echo "postgres: $(compgen -G '/usr/lib/postgresql/*/bin/initdb' | head -1 || command -v initdb) already installed"
	exit 0
fi
command -v apt-get >/dev/null || { echo "postgres: no initdb and no apt-get to install PostgreSQL" >&2; exit 1; }
SUDO=
[[ $(id -u) -eq 0 ]] || SUDO=sudo
$SUDO apt-get update -qq
# The package's own cluster is not needed: the tests run their own.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || { echo "postgres: apt-get did not install initdb" >&2; exit 1; }
echo "postgres: installed $(compgen -G '/usr/lib/postgresql/*/bin/initdb' | head -1)"
