# syntax=docker/dockerfile:1
# leash: a static binary in an empty image. To prefix any image with it:
#
#   COPY --from=ghcr.io/leash-dev/leash:latest /leash /usr/local/bin/leash
#   ENTRYPOINT ["/usr/local/bin/leash", "-c", "/etc/leash.hcl", "--"]
#   CMD ["/app/server"]
#
# leash then runs as PID 1: it forwards signals, reaps zombies and mirrors
# the app's exit code, so no tini or dumb-init is needed.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -tags nethttpomithttp2 -ldflags "-s -w -X main.version=${VERSION}" -o /leash .

FROM scratch
COPY --from=build /leash /leash
# Non-root by default; leash needs no privileges of its own. Run as root only
# to use --user (dropping to another user for the child).
USER 65532:65532
ENTRYPOINT ["/leash"]
CMD ["--help"]
