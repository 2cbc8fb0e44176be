# machsend: see README.md. `make experiment` and `make test` install what they
# need from Debian first (make deps), so a fresh machine needs no manual step.

GO      ?= go
DEBS    := iptables nftables conntrack iproute2 tcpdump iputils-ping
# What tests and the browser experiment need beyond the lab: chromium for
# experiments/browser, systemd-analyze for deploy/, Wine and MinGW for the
# Windows unit tests (scripts/wine/test); not in the lab image of
# experiments/k8s, whose shards need none of them.
BROWSER_DEBS := chromium systemd wine64 gcc-mingw-w64-x86-64-win32
# A one-machine Slurm cluster for make test-slurm.
SLURM_DEBS := slurm-wlm munge
BIN     := bin
CMDS    := natlab machsend rendezvous experiment
# The version stamped into the binaries (--version): git describe.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION)
# What make dist builds and make test cross-compiles: machsend and the
# rendezvous server for every OS/ARCH (the server's event loop is epoll on
# Linux, kqueue on macOS, a goroutine per connection on Windows).
DIST_TARGETS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
# Every release binary as OS/ARCH/CMD, the one list cross and dist build.
DIST_BUILDS  := $(foreach t,$(DIST_TARGETS),$(foreach c,machsend rendezvous,$(t)/$(c)))

.PHONY: all deps deps-slurm build cross wine dist test test-slurm test-unit bench experiment experiment-full fuzz lint clean-lab

all: build

deps-slurm:
	@$(MAKE) --no-print-directory deps DEBS="$(SLURM_DEBS)" BROWSER_DEBS=

deps:
	@missing=""; for p in $(DEBS) $(BROWSER_DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "make deps: need root to apt-get install$$missing" >&2; exit 1; fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

# Every release target builds (part of make test).
cross:
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; for b in $(DIST_BUILDS); do \
	  os=$${b%%/*}; rest=$${b#*/}; echo "cross-compile $$b"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$${rest%/*} $(GO) build -o $$tmp/ ./cmd/$${rest#*/} || exit 1; \
	done
	@for os in darwin windows; do echo "vet for $$os (with tests): machsend's and rendezvous's packages"; \
	  GOOS=$$os $(GO) vet $$(GOOS=$$os $(GO) list -deps ./cmd/machsend ./cmd/rendezvous | grep '^github.com/machsend/machsend/' | grep -v /cmd/) || exit 1; \
	done

# machsend's portable unit tests as Windows binaries under Wine.
wine:
	@GO=$(GO) ./scripts/wine/test

# Versioned static binaries with checksums: dist/CMD_OS_ARCH, dist/SHA256SUMS.
dist:
	@rm -rf dist && mkdir -p dist
	@for b in $(DIST_BUILDS); do \
	  os=$${b%%/*}; rest=$${b#*/}; arch=$${rest%/*}; c=$${rest#*/}; ext=""; [ $$os = windows ] && ext=.exe; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" \
	    -o dist/$${c}_$${os}_$$arch$$ext ./cmd/$$c || exit 1; \
	done
	cd dist && sha256sum * > SHA256SUMS && cat SHA256SUMS

# Unit tests plus the privileged integration tests (run as root), wrapped in
# a leak check of the root namespace and the lab namespaces. Packages run one
# at a time (-p 1): the impairment tests measure delays to a fraction of a
# millisecond, and the experiments package loads both CPUs.
test: deps lint cross wine
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt needed"; exit 1; }
	$(GO) run ./cmd/natlab clean >/dev/null 2>&1 || true
	$(GO) run ./internal/leakcheck -- $(GO) test -p 1 -count=1 -timeout 14m ./...
	@echo "the Windows server's transport (a goroutine per connection), on Linux under the race detector"
	$(GO) test -count=1 -short -race -tags rvconn ./rendezvous

# The sharded run on a real one-machine Slurm cluster (experiments/slurm):
# the quick matrix as three array tasks and a merge job, against one run.
test-slurm: deps deps-slurm
	$(GO) run ./internal/leakcheck -- $(GO) test -count=1 -timeout 20m -tags slurmtest -run TestSlurm ./experiments/slurm

test-unit:
	$(GO) test -count=1 -short ./...

bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 20x ./natlab/...

lint:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseProfile -fuzztime 30s ./nat
	$(GO) test -run '^$$' -fuzz FuzzRealisation -fuzztime 30s ./natlab
	$(GO) test -run '^$$' -fuzz FuzzParseTopology -fuzztime 30s ./natlab
	$(GO) test -run '^$$' -fuzz FuzzDNSAnswer -fuzztime 30s ./natlab
	$(GO) test -run '^$$' -fuzz FuzzServerMessage -fuzztime 30s ./rendezvous
	$(GO) test -run '^$$' -fuzz FuzzDecodeParams -fuzztime 30s ./rendezvous
	$(GO) test -run '^$$' -fuzz FuzzParseManifest -fuzztime 30s ./transfer
	$(GO) test -run '^$$' -fuzz FuzzFrames -fuzztime 30s ./transfer
	$(GO) test -run '^$$' -fuzz FuzzParseLink -fuzztime 30s ./transfer
	$(GO) test -run '^$$' -fuzz FuzzParseImpairment -fuzztime 30s ./natlab/impair
	$(GO) test -run '^$$' -fuzz FuzzParsePacket -fuzztime 30s ./natlab/impair
	$(GO) test -run '^$$' -fuzz FuzzParseSYN -fuzztime 30s ./rendezvous
	$(GO) test -run '^$$' -fuzz FuzzParseErrQueue -fuzztime 30s ./internal/sockopt
	$(GO) test -run '^$$' -fuzz FuzzParseSegment -fuzztime 30s ./internal/rawtcp
	$(GO) test -run '^$$' -fuzz FuzzParseEvents -fuzztime 30s ./session
	$(GO) test -run '^$$' -fuzz FuzzSetDefault -fuzztime 30s ./web
	$(GO) test -run '^$$' -fuzz FuzzStagePath -fuzztime 30s ./web
	$(GO) test -run '^$$' -fuzz FuzzParseCode -fuzztime 30s ./session
	$(GO) test -run '^$$' -fuzz FuzzPakeUpdate -fuzztime 30s ./session

# The main job: the paper matrix (resumed if interrupted, redone when the
# code changed), the throughput figures, then summaries, plots and REPORT.md.
experiment: deps build
	$(BIN)/experiment run experiments/paper.yaml --out results
	$(BIN)/experiment throughput --out results
	$(BIN)/experiment load --out results
	$(BIN)/experiment calibrate --out results
	$(BIN)/experiment natcheck --out results
	$(BIN)/natlab check --all --json > results/profiles.json
	$(BIN)/experiment browser --out results
	$(BIN)/experiment invariance --out results
	$(BIN)/experiment report --out results

# The full matrix: every cell ten times, into results-full/ (hours on one
# machine; or shard it, README "Running on a cluster").
experiment-full: deps build
	$(BIN)/experiment run experiments/paper.yaml --repetitions 10 --out results-full
	$(BIN)/experiment report --out results-full

clean-lab:
	$(GO) run ./cmd/natlab clean
