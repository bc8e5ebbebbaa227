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

test-short: ## unit tests only
	$(GO) test -short -count=1 ./...

demo: deps build ## three simulated hosts bootstrap a cluster on loopback and publish its SRV records
	./testenv/demo.sh $(BIN)

bench: deps ## bootstrap time (agent, etcd's own discovery, static) and DNS publish/lookup
	$(GO) test ./bench -run '^$$' -bench . -benchtime 1x -timeout 30m

clean:
	rm -rf bin
