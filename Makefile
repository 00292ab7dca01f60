# l2tpd build and test entry points. `make test` is what CI runs (as root).

GO       ?= go
GOFMT    ?= gofmt
FUZZTIME ?= 10s
# One fuzz worker by default: the test machines have two cores.
FUZZPARALLEL ?= 1
BINDIR   ?= bin

.PHONY: all build deps test fmt-check vet test-go fuzz bench-lns clean

all: build

## build: build l2tpd, l2tpctl and every other command into $(BINDIR)/
build:
	mkdir -p $(BINDIR)
	$(GO) build -o $(BINDIR)/ ./cmd/...

## deps: install the Debian packages and Go modules the tests need
deps:
	.ci/install-deps

## test: formatting, vet, all tests with the race detector and the
## end-to-end tests (root, network namespaces), then a fuzz smoke run
test: deps
	$(MAKE) --no-print-directory fmt-check
	$(MAKE) --no-print-directory vet
	$(MAKE) --no-print-directory test-go
	$(MAKE) --no-print-directory fuzz

fmt-check:
	@files="$$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*')"; \
	if [ -z "$$files" ]; then exit 0; fi; \
	bad="$$($(GOFMT) -l $$files)"; \
	if [ -n "$$bad" ]; then echo "gofmt -l lists files that need formatting:"; echo "$$bad"; exit 1; fi

vet:
	$(GO) vet ./...

test-go:
	L2TPD_E2E=1 $(GO) test -race -count=1 -timeout 20m ./...

## fuzz: run every fuzz target in the repository for $(FUZZTIME)
fuzz:
	GO="$(GO)" .ci/fuzz-smoke $(FUZZTIME) $(FUZZPARALLEL)

## bench-lns: setup rate and scale of l2tpd against l2tpns with l2tpbench
## (root, network namespaces, several minutes; docs/l2tpbench.md)
bench-lns:
	cmd/l2tpbench/bench-lns.sh

clean:
	rm -rf $(BINDIR)
