# llm-monitor's container image. Two stages: the release binary is built in Rust's image, and
# the image that runs is Debian slim with that binary, the example config and a non-root user.
#
#   docker build -t llm-monitor .
#   mkdir config && cp config.yaml.example config/config.yaml    # then edit it
#   docker run -d --name llm-monitor --hostname llm-monitor -p 8080:8080 \
#     --env-file llm-monitor.env -v "$PWD/config:/config:ro" -e MONITOR_CONFIG=/config/config.yaml \
#     -v llm-monitor-data:/var/lib/llm-monitor llm-monitor
#   docker stop -t 400 llm-monitor     # an upper bound: it exits once the probes in flight are stored
#
# compose.yaml does the same; the README's "Container image" section says what each part is for.

# --- build: the release binary (Cargo.toml's [profile.release]: fat LTO, stripped) ---
FROM docker.io/library/rust:1.95-slim-bookworm AS build
# The vendored OpenSSL (TLS to PostgreSQL) is configured by perl and built by make.
RUN apt-get update \
 && apt-get install -y --no-install-recommends make perl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
 && install -D -m 0755 target/release/llm-monitor /out/llm-monitor

# --- runtime: only the binary comes from the build stage ---
FROM docker.io/library/debian:bookworm-slim AS runtime
# A fixed uid and gid, so a bind-mounted data directory can be given to it: chown 10001:10001.
RUN groupadd --system --gid 10001 llm-monitor \
 && useradd --system --uid 10001 --gid llm-monitor --home-dir /var/lib/llm-monitor --no-create-home \
      --shell /usr/sbin/nologin llm-monitor \
 && install -d -o llm-monitor -g llm-monitor -m 0750 /var/lib/llm-monitor
# The example config, the default (MONITOR_CONFIG below), and the request body it includes.
# Your own config goes in a directory of its own (compose.yaml: /config), shadowing nothing.
COPY config.yaml.example /etc/llm-monitor/config.yaml
COPY data/ /etc/llm-monitor/data/
COPY --from=build /out/llm-monitor /usr/bin/llm-monitor
# Every interface, port 8080 (not a privileged port). This wins over the config's `listen`.
ENV MONITOR_LISTEN=0.0.0.0:8080
# The config every subcommand reads unless given --config (the daemon, check, health).
ENV MONITOR_CONFIG=/etc/llm-monitor/config.yaml
# The working directory is the data volume: the default `database: monitor.db` lands in it.
WORKDIR /var/lib/llm-monitor
VOLUME ["/var/lib/llm-monitor"]
USER 10001:10001
EXPOSE 8080
# The binary is PID 1 and handles SIGTERM itself: it stops scheduling, lets the probes in flight
# finish (each within its timeout, at most 5 min) and stores them, then exits 0. Give `docker
# stop` time for it: -t 400, as the systemd unit's TimeoutStopSec.
STOPSIGNAL SIGTERM
# The binary asks its own /health (no curl in the image): exit 0 on a 200, within 5 s.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/bin/llm-monitor", "health"]
# `docker run IMAGE check`, `... --config /config/other.yaml`: arguments go to the binary.
ENTRYPOINT ["/usr/bin/llm-monitor"]
