# wecom-archive as a container image: one image for every worker of a fleet (docs/scale-out.md).
#
#   docker build -t wecom-archive:latest .
#   docker run --rm -v $PWD/wecom-archive.toml:/etc/wecom-archive/wecom-archive.toml:ro \
#     -e WECOM_ARCHIVE_STATE_PASSWORD_FILE=/run/secrets/pg-password wecom-archive:latest
#
# The official SDK (libWeWorkFinanceSdk_C.so, for `source = "sdk"`) is not redistributable: mount
# it and point [sdk] library at it. The simulator and dump sources need nothing more.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin wecom-archive \
 && strip target/release/wecom-archive

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/wecom-archive --create-home wecom-archive
COPY --from=build /src/target/release/wecom-archive /usr/local/bin/wecom-archive
USER wecom-archive
WORKDIR /var/lib/wecom-archive
ENV WECOM_ARCHIVE_CONFIG=/etc/wecom-archive/wecom-archive.toml
# The callback server, /metrics and /healthz ([callback] listen = "0.0.0.0:8080").
EXPOSE 8080
ENTRYPOINT ["wecom-archive"]
CMD ["serve"]
