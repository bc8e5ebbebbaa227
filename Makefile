# etcd-discovery-agent
GO      ?= go
VERSION ?= $(shell git describe --dirty --always 2>/dev/null || echo dev)
BIN     := bin/etcd-discovery-agent

.PHONY: all build deps test test-short lint demo bench clean

all: build

build: ## build bin/etcd-discovery-agent
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/etcd-discovery-agent

deps: ## install etcd and the other real components tests need (Debian, root)
	./testenv/install-deps.sh

lint: ## gofmt and go vet
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test: deps lint ## everything, against real etcd (installs what it needs)
	$(GO) test -race -count=1 -timeout 14m ./...

test-short: ## unit tests only: every test that starts a process skips
	$(GO) test -short -count=1 -timeout 60s ./...

demo: deps build ## three simulated hosts bootstrap a cluster on loopback and publish its SRV records
	./testenv/demo.sh $(BIN)

bench: deps ## every benchmark; rewrites BENCHMARKS.md (BENCH_ROUNDS=n: n rounds each)
	BENCH_DOC=BENCHMARKS.md $(GO) test ./bench -run '^$$' -bench . -benchtime 1x -timeout 60m

clean:
	rm -rf bin
