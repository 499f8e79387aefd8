# concert-reservation: one image, one binary, three subcommands.
#
#   docker build -t concert-reservation .
#   docker run --rm concert-reservation migrate   # apply embedded migrations, then exit
#   docker run --rm concert-reservation seed      # load demo data, then exit
#   docker run -p 8080:8080 concert-reservation   # serve (default CMD); does not migrate
#
# docker-compose.yml runs these in order against PostgreSQL, Redis and Kafka.

# --- build ---------------------------------------------------------------------------------------
# The crate is edition 2024 (Rust >= 1.85); rust:1 tracks the latest stable 1.x.
FROM rust:1-bookworm AS builder

# rdkafka-sys builds librdkafka from source (./configure + make, C/C++ toolchain); its default
# `libz` feature links the system zlib found through pkg-config. cmake is there for rdkafka-sys's
# `cmake-build` feature, should it ever be turned on. There is no OpenSSL in the dependency tree.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential \
        cmake \
        perl \
        pkg-config \
        python3 \
        zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependency layer: build every dependency against placeholder sources, so that editing src/
# does not rebuild librdkafka and the rest. Rebuilt only when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --bin concert-reservation \
 && rm -rf src

# The real sources. migrations/ is embedded into the binary at compile time (embed_migrations!);
# schema.graphql and diesel.toml are the committed schema and diesel settings.
COPY src ./src
COPY migrations ./migrations
COPY schema.graphql diesel.toml build.rs ./
# COPY keeps the files' modification times, which can be older than the placeholder build above;
# touch them so cargo rebuilds the crate instead of shipping the placeholder binary.
RUN find src build.rs -type f -name '*.rs' -exec touch {} + \
 && cargo build --release --locked --bin concert-reservation

# --- runtime -------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# zlib1g: linked by librdkafka; curl: the compose healthcheck (GET /readyz); ca-certificates: the
# trust store any TLS connection will need (none is made today).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        ca-certificates \
        curl \
        zlib1g \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app

COPY --from=builder /app/target/release/concert-reservation /usr/local/bin/concert-reservation

USER app:app

ENV BIND_ADDR=0.0.0.0:8080 \
    RUST_LOG=info
EXPOSE 8080

ENTRYPOINT ["concert-reservation"]
CMD ["serve"]
