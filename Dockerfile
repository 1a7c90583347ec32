# medallion in a container: a release binary (debug info stripped) on a slim base, with
# the bundled config.yaml and sample landing zone, run as a non-root user.
#
#   docker build -t medallion .
#   docker run --rm medallion run                          # the bundled sample, in the image
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/lakehouse:/work/lakehouse" medallion run
#
# The COPY lines of the build stages name every path the build needs; CI checks that
# they cover the workspace (scripts/check-docker-context.py), since no Docker engine
# runs there.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, in a layer of their own: it is rebuilt only when a manifest or the
# lock file changes, not on every source change (a cold build takes over 20 minutes).
COPY Cargo.toml Cargo.lock ./
COPY crates/medallion-csv/Cargo.toml crates/medallion-csv/
RUN mkdir -p src tests/it crates/medallion-csv/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs tests/it/main.rs crates/medallion-csv/src/lib.rs \
    && cargo build --release --locked --bin medallion \
    && rm -rf src tests crates/medallion-csv/src
COPY crates ./crates
COPY src ./src
COPY tests ./tests
# COPY keeps the files' times, which may be older than the placeholder build: touch
# them so that cargo rebuilds the workspace crates.
RUN touch src/main.rs src/lib.rs crates/medallion-csv/src/lib.rs \
    && cargo build --release --locked --bin medallion

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 medallion
COPY --from=build /src/target/release/medallion /usr/local/bin/medallion
WORKDIR /work
COPY --chown=medallion:medallion config.yaml ./
COPY --chown=medallion:medallion lakehouse/raw ./lakehouse/raw
USER medallion
ENTRYPOINT ["medallion"]
CMD ["--help"]
