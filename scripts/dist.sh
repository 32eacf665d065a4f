#!/usr/bin/env bash
# Builds the release archives reproducibly into DIST_DIR (default dist):
# leash-VERSION-OS-ARCH.tar.gz for every platform in DIST_PLATFORMS, each
# holding leash and README.md, plus SHA256SUMS. The same source, VERSION,
# COMMIT, SOURCE_DATE_EPOCH and Go toolchain give the same bytes, on any
# machine and from any directory:
#   - go build -trimpath (no file system paths), -buildvcs=false (the commit
#     comes through -ldflags, not from .git), -ldflags "-buildid= ..." (no
#     random build id), CGO_ENABLED=0;
#   - tar: entries sorted by name, owner and group 0, numeric, modes
#     normalised, every mtime SOURCE_DATE_EPOCH (the last commit's time);
#   - gzip -n (no name or time in the header).
# Usage: scripts/dist.sh   (make dist sets VERSION, COMMIT, SOURCE_DATE_EPOCH)
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
COMMIT=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
DIST_DIR=${DIST_DIR:-dist}
DIST_PLATFORMS=${DIST_PLATFORMS:-linux/amd64 linux/arm64 linux/armv7 linux/386 darwin/amd64 darwin/arm64}
TAGS=${TAGS:-nethttpomithttp2}
export LC_ALL=C TZ=UTC

rm -rf "$DIST_DIR"
mkdir -p "$DIST_DIR"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

for p in $DIST_PLATFORMS; do
	os=${p%%/*} arch=${p#*/} goarm=
	case $arch in
	armv7) goarch=arm goarm=7 ;;
	*) goarch=$arch ;;
	esac
	name=leash-$VERSION-$os-$arch
	mkdir -p "$stage/$name"
	echo "build $name"
	CGO_ENABLED=0 GOOS=$os GOARCH=$goarch GOARM=$goarm GOFLAGS= \
		"$GO" build -trimpath -buildvcs=false -tags "$TAGS" \
		-ldflags "-s -w -buildid= -X main.version=$VERSION -X main.commit=$COMMIT" \
		-o "$stage/$name/leash" .
	cp README.md "$stage/$name/README.md"
	chmod 0755 "$stage/$name" "$stage/$name/leash"
	chmod 0644 "$stage/$name/README.md"
	tar -C "$stage" --sort=name --format=gnu --owner=0 --group=0 --numeric-owner \
		--mtime="@$SOURCE_DATE_EPOCH" -cf - "$name" | gzip -n -9 >"$DIST_DIR/$name.tar.gz"
done
(cd "$DIST_DIR" && sha256sum -- *.tar.gz >SHA256SUMS)
cat "$DIST_DIR/SHA256SUMS"
