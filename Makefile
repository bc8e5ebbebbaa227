# etcd-discovery-agent
GO      ?= go
VERSION ?= $(shell git describe --dirty --always 2>/dev/null || echo dev)
BIN     := bin/etcd-discovery-agent

.PHONY: all build deps test test-short lint demo bench fuzz clean

all: build

build: ## build bin/etcd-discovery-agent
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/etcd-discovery-agent

deps: ## install etcd and the other real components tests need (Debian, root)
	./testenv/install-deps.sh

lint: ## gofmt and go vet
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test: deps lint ## everything, against real etcd (installs what it needs), and each fuzz target for 3s
	$(GO) test -race -count=1 -timeout 14m ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=3s

test-short: ## unit tests only: every test that starts a process skips
	$(GO) test -short -count=1 -timeout 60s ./...

demo: deps build ## three simulated hosts bootstrap a cluster on loopback and publish its SRV records
	./testenv/demo.sh $(BIN)

bench: deps ## every benchmark; rewrites BENCHMARKS.md (BENCH_ROUNDS=n: n rounds each)
	BENCH_DOC=BENCHMARKS.md $(GO) test ./bench -run '^$$' -bench . -benchtime 1x -timeout 60m

FUZZTIME    ?= 30s
# Every fuzz target of the module, as PACKAGE:NAME (./agent:FuzzQuote, ...).
FUZZTARGETS := $(shell grep -r --include='*_test.go' --exclude-dir=.git -o '^func Fuzz[A-Za-z0-9_]*' . | sed 's|/[^/]*:func |:|' | sort)

# Go 1.26's fuzz coordinator can end a run at -fuzztime with a bare "context
# deadline exceeded" although no input failed (go.dev/issue/75804, fixed in
# Go 1.27): that alone is not a failure; a failing input is written to the
# package's testdata/fuzz and fails the target.
fuzz: ## run each fuzz target for FUZZTIME (default 30s); make test runs only their seed corpora
	@for t in $(FUZZTARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; echo "== $$name ($$pkg, $(FUZZTIME))"; \
		out=$$($(GO) test $$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) 2>&1); rc=$$?; \
		echo "$$out" | tail -n 4; \
		if [ $$rc -ne 0 ]; then \
			if echo "$$out" | grep -q 'Failing input written' || ! echo "$$out" | grep -q '^    context deadline exceeded$$'; then exit 1; fi; \
			echo "(the coordinator's deadline race, go.dev/issue/75804: no failing input)"; \
		fi; \
	done

clean:
	rm -rf bin
