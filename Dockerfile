# medallion in a container: build the release binary, ship it on a slim base.
#   docker build -t medallion .
#   docker run --rm -v "$PWD:/work" -w /work medallion run
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY src ./src
COPY tests ./tests
RUN cargo build --release --locked --bin medallion

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/medallion /usr/local/bin/medallion
WORKDIR /work
ENTRYPOINT ["medallion"]
CMD ["--help"]
