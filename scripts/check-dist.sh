#!/usr/bin/env bash
# Checks that make dist is reproducible: builds the archives twice, the
# second time from a copy of the source tree at another path, with an empty
# build cache, and compares the bytes. DIST_PLATFORMS narrows the set.
set -euo pipefail
cd "$(dirname "$0")/.."

export VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
export COMMIT=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
DIST_DIR="$tmp/first" ./scripts/dist.sh >/dev/null

# The working tree as it is: tracked files with their local changes, and
# untracked files that are not ignored.
mkdir -p "$tmp/elsewhere/src"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp -P --parents -t "$tmp/elsewhere/src"
(cd "$tmp/elsewhere/src" && GOCACHE="$tmp/gocache" DIST_DIR="$tmp/second" ./scripts/dist.sh >/dev/null)

if ! diff "$tmp/first/SHA256SUMS" "$tmp/second/SHA256SUMS"; then
	echo "make dist is not reproducible: the two builds differ"
	exit 1
fi
for f in "$tmp"/first/*.tar.gz; do
	cmp "$f" "$tmp/second/$(basename "$f")"
done
echo "reproducible: $(wc -l <"$tmp/first/SHA256SUMS") archives, identical bytes from two builds"
