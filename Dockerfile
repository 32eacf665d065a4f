# syntax=docker/dockerfile:1
# leash: a static binary in an empty image. To prefix any image with it:
#
#   COPY --from=ghcr.io/leash-dev/leash:latest /leash /usr/local/bin/leash
#   ENTRYPOINT ["/usr/local/bin/leash", "-c", "/etc/leash.hcl", "--"]
#   CMD ["/app/server"]
#
# leash then runs as PID 1: it forwards signals, reaps zombies and mirrors
# the app's exit code, so no tini or dumb-init is needed.

# Multi-architecture: the build stage runs on the builder's own platform
# and cross-compiles for each target, so no emulation is needed, e.g.
#
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7,linux/386 \
#     --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg COMMIT="$(git rev-parse HEAD)" -t ghcr.io/leash-dev/leash:TAG --push .
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
# Set by BuildKit from --platform. GOARCH=arm cross-compiles for ARMv7
# (Go's default GOARM off an ARM host), so ARMv5 and v6 are refused.
ARG TARGETOS
ARG TARGETARCH
ARG TARGETVARIANT
RUN if [ "$TARGETARCH" = arm ] && [ "${TARGETVARIANT:-v7}" != v7 ]; then echo "linux/arm/$TARGETVARIANT: only linux/arm/v7 is built" >&2; exit 1; fi
ENV GOOS=${TARGETOS} GOARCH=${TARGETARCH}
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -tags nethttpomithttp2 -ldflags "-s -w -buildid= -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /leash .

FROM scratch
COPY --from=build /leash /leash
# Non-root by default; leash needs no privileges of its own. Run as root only
# to use --user (dropping to another user for the child).
USER 65532:65532
ENTRYPOINT ["/leash"]
CMD ["--help"]
