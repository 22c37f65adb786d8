#!/usr/bin/env bash
# `make run`: starts dedupfn on embedded defaults, creates the quickstart
# buckets, deploys the example thumbnail function and says what to try.
# DEDUPFN_S3_ADDR and DEDUPFN_API_ADDR choose the listen addresses
# (`make run S3_ADDR=... API_ADDR=...` sets them).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./bin/dedupfn
S3_ADDR=${DEDUPFN_S3_ADDR:-127.0.0.1:9000}
API_ADDR=${DEDUPFN_API_ADDR:-127.0.0.1:8080}
# The client commands below (and those printed) talk to this server only,
# whatever DEDUPFN_API said before.
export DEDUPFN_API=http://$API_ADDR
export DEDUPFN_ACCESS_KEY=${DEDUPFN_ACCESS_KEY:-dedupfn}
export DEDUPFN_SECRET_KEY=${DEDUPFN_SECRET_KEY:-dedupfn-secret}
# serve answers /healthz with this id: another server already listening on
# API_ADDR answers too, and must not receive the deploy.
instance=quickstart-$$-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')

fail() {
  echo "quickstart: $*; nothing was deployed (other addresses: make run S3_ADDR=HOST:PORT API_ADDR=HOST:PORT)" >&2
  exit 1
}

# serve's stderr also goes to a file, for its last words if it fails; its
# log stays text when the terminal would have shown text. tee ignores
# Ctrl-C, or serve's drain would write into a closed pipe.
log=$(mktemp "${TMPDIR:-/tmp}/dedupfn-quickstart.XXXXXX")
format=json
[ -t 2 ] && format=text
DEDUPFN_INSTANCE_ID=$instance "$BIN" serve --data ./data --s3-addr "$S3_ADDR" --api-addr "$API_ADDR" \
  --log-format "$format" --create-bucket images --create-bucket thumbnails 2> >(trap '' INT TERM; exec tee "$log" >&2) &
pid=$!
# Stopping: serve drains what is in flight and exits. Ctrl-C reaches
# serve itself (same process group), so the script only waits for it: a
# second SIGINT would abort the drain. A kill aimed at a serve that is
# already gone is no failure.
stop() { kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"; }
trap stop EXIT
trap 'wait "$pid" 2>/dev/null || true; rm -f "$log"; trap - EXIT; exit 0' INT
trap 'stop; trap - EXIT; exit 0' TERM

# Wait until the server answering on API_ADDR is the one started above.
# serve exits when it cannot listen: its error line is the reason.
ours=
for _ in $(seq 1 300); do
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || true
    why=
    for _ in 1 2 3 4 5 6 7 8 9 10; do # tee may not have written it yet
      why=$(grep '^dedupfn: ' "$log" | tail -n 1 | sed 's/^dedupfn: //') || true
      [ -n "$why" ] && break
      sleep 0.1
    done
    fail "dedupfn serve exited: ${why:-see its log above}"
  fi
  got=$(curl -fsS -o /dev/null -D - "$DEDUPFN_API/healthz" 2>/dev/null |
    tr -d '\r' | awk -F': ' 'tolower($1) == "x-dedupfn-instance" { print $2 }') || true
  [ "$got" = "$instance" ] && { ours=1; break; }
  sleep 0.1
done
[ -n "$ours" ] || fail "the server on $API_ADDR is not the dedupfn serve started here (30s)"

"$BIN" fn deploy thumbnail --wasm bin/thumbnail.wasm --bucket images \
  --suffix .jpg --suffix .jpeg --suffix .png --output-bucket thumbnails --param size=128

S3=http://$S3_ADDR
cat <<MSG

dedupfn is running: S3 endpoint $S3, API and dashboard $DEDUPFN_API
Credentials and the API's address, for aws and ./bin/dedupfn:
  export AWS_ACCESS_KEY_ID=$DEDUPFN_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$DEDUPFN_SECRET_KEY AWS_DEFAULT_REGION=us-east-1
  export DEDUPFN_API=$DEDUPFN_API

Try it (in another shell, with the exports above):
  aws --endpoint-url $S3 s3 cp examples/thumbnail/testdata/cat.jpg s3://images/a/cat.jpg
  aws --endpoint-url $S3 s3 cp examples/thumbnail/testdata/cat.jpg s3://images/b/cat-copy.jpg
  aws --endpoint-url $S3 s3 cp examples/thumbnail/testdata/dog.png s3://images/c/dog.png
  ./bin/dedupfn activations
  ./bin/dedupfn stats --json
  aws --endpoint-url $S3 s3 ls --recursive s3://thumbnails/

Press Ctrl-C to stop.
MSG
wait $pid
