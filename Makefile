# dedupfn — see README.md. `make run` and `make test` do all the set-up.
SHELL := /bin/bash
GO    ?= go
BIN   := bin
TOOLS ?= $(CURDIR)/.tools
export DEDUPFN_TOOLS := $(TOOLS)
# -trimpath keeps the build folder out of a module: the same source built
# with the same Go version and flags in any checkout is the same bytes, so
# the same function version (README "Writing a function").
WASMBUILD := GOOS=wasip1 GOARCH=wasm $(GO) build -trimpath
# `make run`'s listen addresses (or DEDUPFN_S3_ADDR / DEDUPFN_API_ADDR).
S3_ADDR  ?= $(or $(DEDUPFN_S3_ADDR),127.0.0.1:9000)
API_ADDR ?= $(or $(DEDUPFN_API_ADDR),127.0.0.1:8080)
# `make fuzz` fuzzes each parser for FUZZTIME.
FUZZTIME ?= 5m

.PHONY: all build wasm run test compose-check peers check fuzz bench clean

all: build

build: wasm
	$(GO) build -o $(BIN)/dedupfn ./cmd/dedupfn

wasm:
	$(WASMBUILD) -o $(BIN)/thumbnail.wasm ./examples/thumbnail
	$(WASMBUILD) -o $(BIN)/classify.wasm ./examples/classify

# Starts the whole pipeline on embedded defaults with data in ./data.
run: build
	@DEDUPFN_S3_ADDR=$(S3_ADDR) DEDUPFN_API_ADDR=$(API_ADDR) bash scripts/quickstart.sh

# Installs every peer the tests need (into $(TOOLS), reused when present).
peers:
	@set -e; for s in scripts/peers/*.sh; do echo "== $$s"; bash "$$s"; done

# test/chaos and test/e2e go first: go test starts packages in the order
# given, and these two are the longest (385 s and 298 s) and wait,
# mostly; -p 3 keeps a third package building or testing beside them.
test: peers
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	@$(MAKE) --no-print-directory compose-check
	$(GO) test -race -shuffle=on -p 3 -timeout 12m ./test/chaos/ ./test/e2e/ ./...

# Each parser of outside input, fuzzed for FUZZTIME. Not part of `make
# test`: there `go test` runs the fuzz targets' seed corpora (f.Add and
# testdata/fuzz) as ordinary tests, without the coverage-instrumented
# build fuzzing needs, which alone took ~4.3 of its minutes.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseEvent$$' -fuzztime $(FUZZTIME) ./internal/event
	$(GO) test -run '^$$' -fuzz '^FuzzS3Request$$' -fuzztime $(FUZZTIME) ./internal/objects/s3server
	$(GO) test -run '^$$' -fuzz '^FuzzParseTenantTokens$$' -fuzztime $(FUZZTIME) ./cmd/dedupfn
	$(GO) test -run '^$$' -fuzz '^FuzzCheckFunctions$$' -fuzztime $(FUZZTIME) ./internal/runtime/wasm

# deploy/docker-compose.yml against the Compose schema with Debian's
# docker-compose (v1; `apt-get install docker-compose`), once per profile,
# and its one-shot init services present. It starts nothing: no Docker
# engine runs here.
COMPOSE_ENV := MINIO_ROOT_PASSWORD=x POSTGRES_PASSWORD=x COUCHDB_PASSWORD=x DEDUPFN_API_TOKEN=x
compose-check:
	@if ! command -v docker-compose >/dev/null; then \
	  echo "skipping the deploy/docker-compose.yml check: docker-compose is not installed (apt-get install docker-compose)"; \
	else for p in postgres couchdb; do \
	  svcs=$$($(COMPOSE_ENV) docker-compose -f deploy/docker-compose.yml --profile $$p config --services) || exit 1; \
	  for s in minio-init fn-deploy-$$p; do \
	    grep -qx "$$s" <<<"$$svcs" || { echo "deploy/docker-compose.yml: profile $$p has no service $$s"; exit 1; }; \
	  done; \
	done; echo "deploy/docker-compose.yml: valid for docker-compose $$(docker-compose version --short), profiles postgres and couchdb"; fi

GOIMPORTS := $(TOOLS)/bin/goimports

$(GOIMPORTS):
	GOBIN=$(TOOLS)/bin $(GO) install golang.org/x/tools/cmd/goimports@latest

# Everything a reviewer would ask for, and a clean tree afterwards.
check: $(GOIMPORTS)
	$(GO) vet ./...
	@test -z "$$($(GOIMPORTS) -local github.com/dedupfn/dedupfn -l $$(git ls-files '*.go'))" || { echo "goimports -local needed:"; $(GOIMPORTS) -local github.com/dedupfn/dedupfn -l $$(git ls-files '*.go'); exit 1; }
	$(GO) mod tidy && git diff --exit-code go.mod go.sum

# Long runs and side-by-side measurements live here (BENCHMARKS.md): the
# hot-path workload through the binary (`dedupfn bench`), the Go
# benchmarks (benchstat-friendly: BENCHCOUNT runs of each; the 10M-key
# bolt ones only with DEDUPFN_BENCH_10M=1), and test/e2e's benchmarks: the
# thumbnail dedup vs no-dedup comparison and the real pipeline (MinIO →
# Kafka → 3 replicas → PostgreSQL, then CouchDB; DEDUPFN_BENCH_OBJECTS).
BENCHCOUNT ?= 5
BENCHPKGS  := ./internal/fingerprint ./internal/index/bolt ./internal/pipeline ./internal/runtime/wasm \
	./internal/objects/s3server ./internal/source/embedded
bench: peers build
	$(WASMBUILD) -o $(BIN)/copy.wasm ./examples/copy
	$(BIN)/dedupfn bench --wasm $(BIN)/copy.wasm
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) -timeout 60m $(BENCHPKGS)
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./test/e2e/

clean:
	rm -rf $(BIN)
