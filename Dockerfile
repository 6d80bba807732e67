# The gorch image: one static binary (/gorch), the service chosen by subcommand
# (coordinator, worker, collector, setup, ...), run as a non-root user, no shell.
#
#   docker build -t gorch:0.1.0 .
#
# scripts/image.sh builds the same files as an OCI archive without Docker, reproducibly
# (the same source gives the same digest); the tests and CI use that.
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=0.1.0
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -buildvcs=false \
      -ldflags "-s -w -buildid= -X main.version=${VERSION}" -o /out/gorch ./cmd/gorch

# Fashion-MNIST, where gorch looks for it, so that the image trains it out of the box.
FROM debian:bookworm-slim AS data
RUN apt-get update && apt-get install -y --no-install-recommends dataset-fashion-mnist ca-certificates \
    && rm -rf /var/lib/apt/lists/*

FROM scratch
COPY --from=data /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=data /usr/share/datasets/fashion-mnist /usr/share/datasets/fashion-mnist
COPY deploy/image/passwd deploy/image/group /etc/
COPY --from=build /out/gorch /gorch
USER 65532:65532
ENTRYPOINT ["/gorch"]
