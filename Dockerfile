# The wxauth runtime image: Debian's slim base, the two libraries the binary needs at run time,
# and a binary built outside the image (nothing is compiled here, so no build tools are in it).
#
#   cargo build --release
#   docker build -t wxauth .
#
# WXAUTH_BINARY picks the binary (a path inside the build context; .dockerignore lets only
# target/release/wxauth and target/debug/wxauth in). CI packages its debug build:
#   docker build --build-arg WXAUTH_BINARY=target/debug/wxauth -t wxauth:ci .
FROM debian:bookworm-slim

# `ldd wxauth`: libssl3 (native-tls, for WeChat's API over HTTPS and TLS to databases) beside
# libc and libgcc_s, which the base has; ca-certificates to verify those servers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/*

# A fixed, non-root uid/gid so volumes and Kubernetes' runAsNonRoot can rely on it.
RUN groupadd --system --gid 10001 wxauth \
    && useradd --system --uid 10001 --gid wxauth --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin wxauth \
    && mkdir /data \
    && chown wxauth:wxauth /data \
    && chmod 700 /data

ARG WXAUTH_BINARY=target/release/wxauth
# Owned by root: the server cannot rewrite itself.
COPY ${WXAUTH_BINARY} /usr/local/bin/wxauth

# Listen on every interface of the container; the public URL (the token issuer) has no default
# here: `wxauth serve` refuses to start on a non-loopback address without WXAUTH_PUBLIC_URL.
# SQLite and the master key file live in /data unless DATABASE_URL / WXAUTH_MASTER_KEY say
# otherwise. Logs are JSON lines on stderr.
ENV WXAUTH_LISTEN=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///data/wxauth.db?mode=rwc \
    WXAUTH_MASTER_KEY_FILE=/data/wxauth.key \
    WXAUTH_LOG_FORMAT=json

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

# The slim base has no curl: the binary probes its own /healthz (3 s timeout, exit 0 or 1).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["wxauth", "healthcheck"]

# No ENTRYPOINT: `docker run IMAGE wxauth migrate`, `... wxauth client list`, or any other
# command (`docker run --rm IMAGE id`).
CMD ["wxauth", "serve"]
