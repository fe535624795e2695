# syntax=docker/dockerfile:1
# Relay: multi-stage build. The dependency layer is cached separately from the sources, the
# runtime image holds one static-ish binary, runs as a non-root user and checks its own health.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# 1. Dependencies only: manifests and empty crate roots, so this layer survives source edits.
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY server/Cargo.toml server/Cargo.toml
COPY tests/Cargo.toml tests/Cargo.toml
COPY bench/Cargo.toml bench/Cargo.toml
# The benchmark harness is a workspace member the image does not build: a stub root suffices.
RUN mkdir -p server/src tests/src bench/src \
    && echo 'fn main() {}' > server/src/main.rs && touch server/src/lib.rs tests/src/lib.rs \
    && echo 'fn main() {}' > bench/src/main.rs \
    && cargo build --release --locked -p relay --bin relay \
    && rm -rf server/src tests/src
# 2. The sources. (Build step kept identical to scripts/test's, plus --release.)
COPY server server
COPY migrations migrations
COPY pricing pricing
COPY widget widget
COPY tests/src tests/src
RUN touch server/src/main.rs server/src/lib.rs \
    && cargo build --release --locked -p relay --bin relay

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/relay --create-home relay
COPY --from=build /src/target/release/relay /usr/local/bin/relay
USER relay
WORKDIR /var/lib/relay
ENV RELAY_LISTEN=0.0.0.0:8080 RELAY_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 CMD ["relay", "healthcheck"]
ENTRYPOINT ["relay"]
CMD ["serve"]
