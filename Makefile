# rqlited build and test entry points. `make run` and `make test` are the two
# commands README gives; everything they need is installed or built here.

GO        ?= go
DATA      ?= ./data
HTTP_ADDR ?= localhost:4001
RAFT_ADDR ?= localhost:4002
VERSION   ?= v0.1.0
COMMIT    := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILDTIME := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS   := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildTime=$(BUILDTIME)
# SQLite is compiled with what rqlite's go-sqlite3 fork enables (FTS5,
# JSON, math functions, R*Tree, Geopoly, DBSTAT, session, ...; DOC/DESIGN.md
# "SQLite options"). go-sqlite3 build tags turn on what has a tag; the rest
# are -D defines in CGO_CFLAGS (which reach every cgo package, harmless for
# defines). Both are exported, so every go command below, and any it runs,
# gets them; a -tags flag on a command line replaces GOFLAGS's, so every
# command that needs its own (static, and SYSTEM_TAGS below) repeats
# SQLITE_TAGS.
SQLITE_TAGS   := sqlite_fts5,sqlite_math_functions,sqlite_dbstat,sqlite_preupdate_hook,sqlite_column_metadata
# The system tests (system_test/, which start real rqlited processes for
# minutes) build only with the "system" tag, so that `go test ./...` runs
# the unit tests alone; every target below that runs or vets them passes it.
SYSTEM_TAGS   := $(SQLITE_TAGS),system
SQLITE_CFLAGS := -DSQLITE_ENABLE_GEOPOLY=1 -DSQLITE_ENABLE_SESSION -DSQLITE_ENABLE_PREUPDATE_HOOK \
	-DSQLITE_OMIT_SHARED_CACHE -DSQLITE_MEMDB_DEFAULT_MAXSIZE=2147483648
# Go's default CGO_CFLAGS is -O2 -g; setting the variable replaces it.
ifeq ($(strip $(CGO_CFLAGS)),)
CGO_CFLAGS := -O2 -g
endif
ifeq ($(findstring -DSQLITE_ENABLE_GEOPOLY,$(CGO_CFLAGS)),)
CGO_CFLAGS += $(SQLITE_CFLAGS)
endif
export CGO_CFLAGS
# The db and system tests fail, instead of skipping, when these are missing.
export RQLITED_REQUIRE_SQLITE_OPTS := 1
# Go's test cache and module cache live outside the repository, and so do
# the etcd and Consul binaries the discovery tests run (tools/build.sh).
export GOFLAGS := -buildvcs=false -tags=$(SQLITE_TAGS)
RQLITED_TOOLS ?= $(HOME)/.cache/rqlited-tools
export RQLITED_TOOLS

# make test fuzzes each target for a fixed number of inputs (a fixed time can
# end in "context deadline exceeded" from the fuzz coordinator itself);
# make fuzz runs for FUZZTIME each.
FUZZTIME  ?= 60s
FUZZSHORT ?= 20000x
# package:target pairs run by `make fuzz` (and briefly by `make test`)
FUZZ_TARGETS := ./command:FuzzDecode ./db:FuzzHostileSQL ./http:FuzzParseStatements ./http:FuzzFastStatements ./http:FuzzAppendString ./http:FuzzParseParams ./cluster:FuzzReadFrame ./disco:FuzzLoadConfig ./disco:FuzzDecodeDNSConfig ./disco/consul:FuzzConsulConfig ./disco/etcd:FuzzEtcdConfig ./store:FuzzHostileSQLNode ./store/raftlog:FuzzReplay

.PHONY: docker docker-test docker-fixtures static
.PHONY: all build run test unit-test system-test vet fmt-check bench fuzz fuzz-short fuzz-run tools clean netns-tools soak chaos

all: build

## build: compile bin/rqlited
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/rqlited ./cmd/rqlited

## run: build and start one node on $(HTTP_ADDR)/$(RAFT_ADDR) with data in $(DATA)
run: build
	./bin/rqlited -http-addr $(HTTP_ADDR) -raft-addr $(RAFT_ADDR) $(DATA)

## test: everything: formatting, vet, unit tests, short fuzzing, system tests with -race
test: fmt-check vet unit-test fuzz-short system-test

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet -tags '$(SYSTEM_TAGS)' ./...

unit-test: netns-tools
	$(GO) test -race -count=1 ./...

# The fault-injection tests make network namespaces (root, iproute2,
# iptables). As root, missing tools are installed and the tests are
# required to run; otherwise they skip.
ifeq ($(shell id -u),0)
export RQLITED_REQUIRE_NETNS := 1
endif
netns-tools:
	@if [ "$$(id -u)" = 0 ] && ! { command -v ip && command -v iptables; } >/dev/null 2>&1; then \
		echo "installing iproute2 and iptables for the fault-injection tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 iptables >/dev/null; fi

## static: a fully static bin/rqlited-static (cgo SQLite linked in), for images FROM scratch
static:
	CGO_ENABLED=1 $(GO) build -tags '$(SQLITE_TAGS),osusergo,netgo,sqlite_omit_load_extension' \
		-ldflags '$(LDFLAGS) -s -w -linkmode external -extldflags "-static"' -o bin/rqlited-static ./cmd/rqlited

## docker: the image rqlited:dev, FROM scratch around bin/rqlited-static (no registry needed)
docker: static
	rm -rf bin/docker && mkdir -p bin/docker/rqlite/file/data
	cp bin/rqlited-static bin/docker/rqlited
	docker build -q -f docker/Dockerfile.local -t rqlited:dev bin/docker

## docker-fixtures: images the container tests run next to rqlited: a DNS server, etcd and Consul
docker-fixtures: tools
	rm -rf bin/fixtures && mkdir -p bin/fixtures/dns bin/fixtures/etcd bin/fixtures/consul
	CGO_ENABLED=0 $(GO) build -o bin/fixtures/dns/dnsfixture ./cmd/dnsfixture
	cp $(RQLITED_TOOLS)/etcd bin/fixtures/etcd/ && cp $(RQLITED_TOOLS)/consul bin/fixtures/consul/
	for f in dnsfixture:dns etcd:etcd consul:consul; do bin=$${f%%:*}; dir=$${f##*:}; \
		printf 'FROM scratch\nCOPY %s /%s\nENTRYPOINT ["/%s"]\n' $$bin $$bin $$bin > bin/fixtures/$$dir/Dockerfile; \
		docker build -q -t rqlited-$$dir:dev bin/fixtures/$$dir || exit 1; done

## tools: build the etcd and Consul servers the discovery tests use (cached)
tools:
	./tools/build.sh $(RQLITED_TOOLS)

# System tests run a race-enabled build of the real binary.
# Container tests run whenever a Docker engine answers.
system-test: tools netns-tools
	$(GO) build -race -ldflags '$(LDFLAGS)' -o bin/rqlited-race ./cmd/rqlited
	@if docker info >/dev/null 2>&1; then $(MAKE) --no-print-directory docker docker-fixtures; img=rqlited:dev; \
	else echo "no Docker engine answers: the container tests are skipped"; img=; fi; \
	echo "RQLITED_DOCKER_IMAGE=$$img RQLITED_PATH=$(CURDIR)/bin/rqlited-race $(GO) test -race -count=1 -tags '$(SYSTEM_TAGS)' -timeout 25m ./system_test/..."; \
	RQLITED_DOCKER_IMAGE=$$img RQLITED_PATH=$(CURDIR)/bin/rqlited-race $(GO) test -race -count=1 -tags '$(SYSTEM_TAGS)' -timeout 25m ./system_test/...

## chaos: the fault matrix once, results in bin/chaos-report.json (make chaos CHAOS_SEED=N to replay)
CHAOS_SEED ?= 0
chaos: netns-tools
	$(GO) build -race -ldflags '$(LDFLAGS)' -o bin/rqlited-race ./cmd/rqlited
	RQLITED_CHAOS_REPORT=$(CURDIR)/bin/chaos-report.json RQLITED_PATH=$(CURDIR)/bin/rqlited-race \
		$(GO) test -race -count=1 -tags '$(SYSTEM_TAGS)' -timeout 30m -run 'TestChaos$$' -v ./system_test/ -chaos.seed=$(CHAOS_SEED)

## discovery-matrix: the discovery scenarios x modes once, table in bin/discovery-matrix.md (DOC/RELIABILITY.md)
.PHONY: discovery-matrix
DISCOVERY_TESTS := ^(TestDisco|TestDocker|TestJoin|TestBootstrapExpect|TestRemoveAndRestartAll|TestSameIDNewAddress|TestClusterBadInput|TestNodeWithStateRefusesOtherCluster)
discovery-matrix: tools
	$(GO) build -race -ldflags '$(LDFLAGS)' -o bin/rqlited-race ./cmd/rqlited
	@if docker info >/dev/null 2>&1; then $(MAKE) --no-print-directory docker docker-fixtures; img=rqlited:dev; \
	else echo "no Docker engine answers: the container tests are skipped"; img=; fi; \
	RQLITED_DOCKER_IMAGE=$$img RQLITED_MATRIX_REPORT=$(CURDIR)/bin/discovery-matrix.md RQLITED_PATH=$(CURDIR)/bin/rqlited-race \
		$(GO) test -race -count=1 -tags '$(SYSTEM_TAGS)' -timeout 30m -run '$(DISCOVERY_TESTS)' -v ./system_test/

## soak: random faults under load for DURATION (make soak DURATION=1h), then a summary
DURATION ?= 10m
soak: netns-tools
	$(GO) build -race -ldflags '$(LDFLAGS)' -o bin/rqlited-race ./cmd/rqlited
	RQLITED_SOAK_DURATION=$(DURATION) RQLITED_CHAOS_REPORT=$(CURDIR)/bin/soak-report.json RQLITED_PATH=$(CURDIR)/bin/rqlited-race \
		$(GO) test -race -count=1 -tags '$(SYSTEM_TAGS)' -timeout 0 -run 'TestChaosSoak$$' -v ./system_test/ -chaos.seed=$(CHAOS_SEED)

## docker-test: only the multi-container tests
docker-test: docker docker-fixtures
	RQLITED_DOCKER_IMAGE=rqlited:dev $(GO) test -count=1 -tags '$(SYSTEM_TAGS)' -run 'TestDocker' -v ./system_test/...

## fuzz: run every fuzz target for FUZZTIME each (make fuzz FUZZTIME=10m for a long run)
fuzz:
	@$(MAKE) --no-print-directory fuzz-run FUZZFOR=$(FUZZTIME)

fuzz-short:
	@$(MAKE) --no-print-directory fuzz-run FUZZFOR=$(FUZZSHORT)

fuzz-run:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name for $(FUZZFOR)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZFOR) $$pkg || exit 1; \
	done

## bench: start real nodes and measure them with cmd/rqbench (see DOC/PERFORMANCE.md)
BENCHTIME ?= 5s
bench: build tools
	$(GO) run ./cmd/rqbench -rqlited bin/rqlited -duration $(BENCHTIME)

clean:
	rm -rf bin
