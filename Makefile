# leash: see README.md. `make test` is the test command CI runs.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# The last commit's time: every mtime in the release archives (make dist).
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
VAULT_BIN := $(CURDIR)/.cache/bin/vault
CT_BIN    := $(CURDIR)/.cache/bin/consul-template
LDFLAGS   := -s -w -buildid= -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# net/http's bundled HTTP/2 client is dead weight in leash: its Vault
# transport gets HTTP/2 from golang.org/x/net/http2 (lease/vault_client.go), which
# vault/api links anyway. Leaving the bundle out makes the binary 0.33 MB
# smaller and the peak RSS about 0.55 MB lower; a plain go build still works.
# Tests build with the same tags (TestClientHTTP2OverTLS checks HTTP/2).
TAGS      := nethttpomithttp2

.PHONY: all build dist dist-check vault consul-template test test-cross lint fuzz dockerfile demo bench clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -tags $(TAGS) -ldflags "$(LDFLAGS)" -o bin/leash .

# Release archives in dist/: leash-VERSION-OS-ARCH.tar.gz for linux amd64,
# arm64, armv7 and 386 and darwin amd64 and arm64, and SHA256SUMS; byte for
# byte reproducible from the same source and Go toolchain (scripts/dist.sh
# says how). dist-check builds them twice, from two paths with two build
# caches, and compares.
DIST_ENV = GO=$(GO) VERSION=$(VERSION) COMMIT=$(COMMIT) SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) TAGS=$(TAGS)
dist:
	$(DIST_ENV) ./scripts/dist.sh

dist-check:
	$(DIST_ENV) ./scripts/check-dist.sh

# The Vault test server (BUSL): built from the Go module proxy into .cache,
# never linked into leash. The first build takes 20-30 minutes on 2 cores.
vault: $(VAULT_BIN)

$(VAULT_BIN): tools/vault/go.mod tools/vault/go.sum
	mkdir -p $(dir $@)
	cd tools/vault && $(GO) build -o $@ github.com/hashicorp/vault
	touch $@

# consul-template v0.41.1 (MPL-2.0), pinned in tools/consul-template: the
# template corpus (e2e/ctcompat_test.go) renders with it and with leash
# against the same Vault, and make bench measures it. Built from the Go
# module proxy into .cache (about a minute), never linked into leash.
consul-template: $(CT_BIN)

$(CT_BIN): tools/consul-template/go.mod tools/consul-template/go.sum
	mkdir -p $(dir $@)
	cd tools/consul-template && CGO_ENABLED=0 $(GO) build -o $@ github.com/hashicorp/consul-template
	touch $@

test: vault consul-template
	LEASH_REQUIRE_VAULT=1 LEASH_VAULT_BIN=$(VAULT_BIN) LEASH_CONSUL_TEMPLATE_BIN=$(CT_BIN) $(GO) test -race -count=1 -timeout 30m -tags $(TAGS) ./...

# 32-bit Linux, so it cannot regress: go vet of every package for linux/386
# and linux/arm (armv7), then the unit tests of the packages that need no
# Vault. linux/386 runs natively on an amd64 host (no race detector on 386);
# armv7 runs under qemu-user (Debian's qemu-user-static), always through
# go test -exec, since binfmt_misc may not be registered. For the same
# reason render's helper child is started through the emulator
# (LEASH_TEST_EMULATOR), and the supervisor's tests, which supervise the
# test binary itself, run on 386 only: the kernel cannot exec an ARM binary
# without binfmt_misc. On a host that is not amd64, 386 runs under
# qemu-i386-static like armv7 does.
CROSS_PKGS := ./signals ./render
QEMU_ARM   ?= qemu-arm-static
QEMU_386   ?= qemu-i386-static
ifeq ($(shell $(GO) env GOHOSTARCH),amd64)
CROSS_386 := $(GO) test -count=1 -tags $(TAGS) $(CROSS_PKGS) ./supervisor
else
CROSS_386 := LEASH_TEST_EMULATOR=$(QEMU_386) $(GO) test -count=1 -tags $(TAGS) -exec $(QEMU_386) $(CROSS_PKGS)
endif

# macOS (darwin/amd64, darwin/arm64): there is no Mac here, so leash and
# every test binary are cross-compiled and vetted for it; none of it runs.
# The shared logic is unit-tested on Linux.
DARWIN_ARCHS := amd64 arm64
test-cross:
	@set -e; d=$$(mktemp -d); trap 'rm -rf "$$d"' EXIT; for a in $(DARWIN_ARCHS); do \
		echo "darwin/$$a: build, vet, test -c"; \
		GOOS=darwin GOARCH=$$a $(GO) build -tags $(TAGS) -o "$$d/leash" .; \
		GOOS=darwin GOARCH=$$a $(GO) vet -tags $(TAGS) ./...; \
		GOOS=darwin GOARCH=$$a $(GO) vet -tags "$(TAGS) bench" ./bench; \
		GOOS=darwin GOARCH=$$a $(GO) test -c -tags $(TAGS) -o "$$d/" ./...; \
	done
	GOOS=linux GOARCH=386 $(GO) vet -tags $(TAGS) ./...
	GOOS=linux GOARCH=arm GOARM=7 $(GO) vet -tags $(TAGS) ./...
	GOOS=linux GOARCH=386 $(CROSS_386)
	GOOS=linux GOARCH=arm GOARM=7 LEASH_TEST_EMULATOR=$(QEMU_ARM) $(GO) test -count=1 -tags $(TAGS) -exec $(QEMU_ARM) $(CROSS_PKGS)

# Each fuzz target for a fixed number of inputs; the corpora live in
# testdata/fuzz. Counts, not durations: with a duration, Go 1.26's fuzz
# coordinator can race its own deadline and fail with a bare "context
# deadline exceeded" and no failing input (go.dev/issue/75804, fixed in Go
# 1.27); a count has no deadline, so a loaded machine is only slower. The
# counts take about 5 s each on 2 quiet cores. FUZZTIME=10m overrides all.
FUZZTIME ?=
FUZZ_TARGETS := .:FuzzParseSecretFlag:10000x .:FuzzConfig:20000x .:FuzzParseCLIFast:2000x \
	./render:FuzzTemplateRender:50000x ./render:FuzzJSONString:100000x ./render:FuzzDotenvRoundTrip:50000x
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; n=$(or $(FUZZTIME),$${rest#*:}); \
		echo "fuzz $$pkg $$name $$n"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $$n $$pkg; \
	done

# Lint the Dockerfiles and run their build command here (no Docker engine).
dockerfile:
	./scripts/check-dockerfile.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt: $$out"; exit 1; fi
	$(GO) vet ./...

# A throwaway Vault dev server and PostgreSQL database, credentials rotating
# every few seconds under examples/demo; cleans up on exit and on Ctrl-C.
demo: build vault
	$(GO) build -o bin/leash-demo-app ./examples/demo
	$(GO) build -o bin/leash-demo ./examples/demo/run
	./bin/leash-demo -leash bin/leash -vault $(VAULT_BIN) -app bin/leash-demo-app

# leash vs Vault Agent exec mode, consul-template, tini and a direct exec
# (bench/doc.go). BENCH_SHORT=1: one iteration each, for CI; the full run
# takes tens of minutes and writes bench/results.md.
BENCH_SHORT ?=
bench: vault
	BENCH_SHORT=$(BENCH_SHORT) LEASH_REQUIRE_VAULT=1 LEASH_VAULT_BIN=$(VAULT_BIN) $(GO) test -tags bench -run TestBench -count=1 -timeout 3h -v ./bench/

clean:
	rm -rf bin dist
