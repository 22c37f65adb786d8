# dedupfn — see README.md. `make run` and `make test` do all the set-up.
SHELL := /bin/bash
GO    ?= go
BIN   := bin
TOOLS ?= $(CURDIR)/.tools
export DEDUPFN_TOOLS := $(TOOLS)
# Fuzz each parser briefly in `make test`; longer in `make fuzz`.
FUZZTIME ?= 10s

.PHONY: all build run test peers check fuzz bench clean

all: build

build:
	$(GO) build -o $(BIN)/dedupfn ./cmd/dedupfn
	GOOS=wasip1 GOARCH=wasm $(GO) build -o $(BIN)/thumbnail.wasm ./examples/thumbnail

# Starts the whole pipeline on embedded defaults with data in ./data.
run: build
	@bash scripts/quickstart.sh

# Installs every peer the tests need (into $(TOOLS), reused when present).
peers:
	@set -e; for s in scripts/peers/*.sh; do echo "== $$s"; bash "$$s"; done

test: peers
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) test -race -shuffle=on -timeout 15m ./...
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME)

# Each parser of outside input, fuzzed for FUZZTIME (10s in `make test`).
fuzz: FUZZTIME = 5m
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseEvent$$' -fuzztime $(FUZZTIME) ./internal/event
	$(GO) test -run '^$$' -fuzz '^FuzzS3Request$$' -fuzztime $(FUZZTIME) ./internal/objects/s3server
	$(GO) test -run '^$$' -fuzz '^FuzzParseTenantTokens$$' -fuzztime $(FUZZTIME) ./cmd/dedupfn

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
	GOOS=wasip1 GOARCH=wasm $(GO) build -o $(BIN)/copy.wasm ./examples/copy
	$(BIN)/dedupfn bench --wasm $(BIN)/copy.wasm
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) -timeout 60m $(BENCHPKGS)
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./test/e2e/

clean:
	rm -rf $(BIN)
