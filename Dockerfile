# syntax=docker/dockerfile:1.7
# The admission webhook image: one static (musl) binary on distroless/static, non-root.
#   docker build -t ghcr.io/mlplatform-io/mlplatform-webhook:v0.1.0 .
# The manifests (manifests/03-deployment.yaml) reference that tag; `kubectl mlplatform
# webhook install --image` overrides it.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
# musl-tools: musl-gcc, which ring's C/assembly parts need for the musl target. The build runs
# on the image's platform (linux/amd64 or linux/arm64; .github/workflows/release.yml builds each
# on a native runner), so the target is this machine's arch with musl.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "$(uname -m)-unknown-linux-musl"
# cc-rs would look for aarch64-linux-musl-gcc; Debian's musl-gcc serves either arch.
ENV CC_x86_64_unknown_linux_musl=musl-gcc \
    CC_aarch64_unknown_linux_musl=musl-gcc
WORKDIR /src
# The whole workspace: cargo resolves every member's manifest even to build one crate.
# .dockerignore keeps target/ and .git out of the context.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(uname -m)-unknown-linux-musl" \
 && cargo build --release --locked \
        --target "$target" \
        -p mlplatform-webhook --bin mlplatform-webhook \
 && install -D -m 0555 "target/$target/release/mlplatform-webhook" \
        /out/mlplatform-webhook

# distroless/static: no shell, no package manager; CA certificates and a passwd entry for
# the nonroot user (65532) are all it adds to scratch.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mlplatform-webhook /mlplatform-webhook
USER 65532:65532
EXPOSE 8443 8080
ENTRYPOINT ["/mlplatform-webhook"]
