# syntax=docker/dockerfile:1
# The operator image: a release build on Debian, run from distroless (glibc, no shell) as non-root.
# Only the `credsync` binary ships (no simulators, no dev tools: those live in crates/testkit and crates/bench).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The workspace's other members (testkit, bench) must be present for cargo to load it; only
# the credsync binary is built from them.
COPY crates ./crates
# Cache mounts keep the registry and build tree between image builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin credsync \
    && cp target/release/credsync /credsync

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="credsync" \
      org.opencontainers.image.description="Kubernetes operator that keeps CRM, ERP and SSO credentials equal to custom resources" \
      org.opencontainers.image.source="https://github.com/credsync/credsync" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /credsync /credsync
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/credsync"]
CMD ["run"]
