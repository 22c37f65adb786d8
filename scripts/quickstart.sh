#!/usr/bin/env bash
# `make run`: starts dedupfn on embedded defaults, creates the quickstart
# buckets, deploys the example thumbnail function and says what to try.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./bin/dedupfn
API=${DEDUPFN_API:-http://127.0.0.1:8080}
export DEDUPFN_ACCESS_KEY=${DEDUPFN_ACCESS_KEY:-dedupfn}
export DEDUPFN_SECRET_KEY=${DEDUPFN_SECRET_KEY:-dedupfn-secret}

"$BIN" serve --data ./data --s3-addr 127.0.0.1:9000 --api-addr 127.0.0.1:8080 \
  --create-bucket images --create-bucket thumbnails &
pid=$!
# Stopping: serve drains what is in flight and exits. Ctrl-C reaches
# serve itself (same process group), so the script only waits for it: a
# second SIGINT would abort the drain. A kill aimed at a serve that is
# already gone is no failure.
stop() { kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
trap stop EXIT
trap 'wait "$pid" 2>/dev/null || true; trap - EXIT; exit 0' INT
trap 'stop; trap - EXIT; exit 0' TERM

for _ in $(seq 1 100); do
  curl -fsS "$API/healthz" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { echo "dedupfn serve exited; see the log above" >&2; exit 1; }
  sleep 0.1
done

"$BIN" fn deploy thumbnail --wasm bin/thumbnail.wasm --bucket images \
  --suffix .jpg --suffix .jpeg --suffix .png --output-bucket thumbnails --param size=128

cat <<MSG

dedupfn is running: S3 endpoint http://127.0.0.1:9000, API and dashboard $API
Credentials:
  export AWS_ACCESS_KEY_ID=$DEDUPFN_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$DEDUPFN_SECRET_KEY AWS_DEFAULT_REGION=us-east-1

Try it (in another shell, with the credentials above):
  aws --endpoint-url http://127.0.0.1:9000 s3 cp examples/thumbnail/testdata/cat.jpg s3://images/a/cat.jpg
  aws --endpoint-url http://127.0.0.1:9000 s3 cp examples/thumbnail/testdata/cat.jpg s3://images/b/cat-copy.jpg
  aws --endpoint-url http://127.0.0.1:9000 s3 cp examples/thumbnail/testdata/dog.png s3://images/c/dog.png
  ./bin/dedupfn activations
  ./bin/dedupfn stats --json
  aws --endpoint-url http://127.0.0.1:9000 s3 ls --recursive s3://thumbnails/

Press Ctrl-C to stop.
MSG
wait $pid
