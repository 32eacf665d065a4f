#!/usr/bin/env bash
# Checks the Dockerfiles without a Docker engine (none runs on CI machines):
# 1. they parse and lint clean (dockerfile-utils, pinned, from npm);
# 2. the top-level Dockerfile's build stage runs on $BUILDPLATFORM and
#    cross-compiles for TARGETOS/TARGETARCH (a multi-architecture image);
# 3. its build command, run here as written (for this machine's platform),
#    produces a static, stripped binary of at most 16 MB.
set -euo pipefail
cd "$(dirname "$0")/.."

npm_dir=.cache/npm
if [ ! -x "$npm_dir/node_modules/.bin/dockerfile-utils" ]; then
	mkdir -p "$npm_dir"
	npm install --prefix "$npm_dir" --no-audit --no-fund --silent dockerfile-utils@0.16.3 >/dev/null
fi
for f in Dockerfile examples/kubernetes/Dockerfile; do
	echo "lint $f"
	"$npm_dir/node_modules/.bin/dockerfile-utils" lint "$f"
done

# Multi-architecture: the build stage runs on the build platform and
# cross-compiles for the target one.
grep -qE '^FROM --platform=\$BUILDPLATFORM .* AS build$' Dockerfile ||
	{ echo "Dockerfile: the build stage is not FROM --platform=\$BUILDPLATFORM"; exit 1; }
grep -qE '^ENV GOOS=\$\{TARGETOS\} GOARCH=\$\{TARGETARCH\}$' Dockerfile ||
	{ echo "Dockerfile: GOOS and GOARCH do not come from TARGETOS and TARGETARCH"; exit 1; }

# The RUN line that builds leash, with its output redirected to a temp dir.
build=$(grep -E '^RUN CGO_ENABLED=0 go build' Dockerfile | sed -e 's/^RUN //')
[ -n "$build" ] || { echo "Dockerfile: no 'RUN CGO_ENABLED=0 go build' line"; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
VERSION=ci
build=${build//\/leash /$out/leash }
build=${build//\$\{VERSION\}/$VERSION}
COMMIT=0000000000000000000000000000000000000000
build=${build//\$\{COMMIT\}/$COMMIT}
echo "build: $build"
eval "$build"
bin="$out/leash"
if readelf -l "$bin" | grep -q 'INTERP'; then
	echo "$bin: dynamically linked (has a program interpreter)"; exit 1
fi
if readelf -S "$bin" | grep -q '\.symtab'; then
	echo "$bin: not stripped"; exit 1
fi
size=$(stat -c %s "$bin")
echo "static stripped binary: $size bytes"
[ "$size" -le $((16 * 1024 * 1024)) ] || { echo "binary larger than 16 MB"; exit 1; }
"$bin" version
