#!/usr/bin/env bash
# make dist: release archives per target, SHA256SUMS, and the krew manifest generated from the
# archives (so every sha256 in it matches). docs/release.md says how to build the targets whose
# Rust std is not installed here.
#
# Environment (all optional):
#   DIST_DIR          output directory (default: dist)
#   DIST_TARGETS      target triples to build (default: every release target whose std is
#                     installed; the others are listed as skipped)
#   DIST_BINARY       use this already-built binary instead of building (one target only;
#                     the tests use it so they never rebuild the workspace)
#   DIST_KREW_OUT     krew manifest path (default: krew-index/plugins/mlplatform.yaml)
#   DIST_BASE_URL     download URL of the archives (default: the GitHub release of the version)
#   SOURCE_DATE_EPOCH archive timestamps (default: the last commit's), for reproducible archives
#   DIST_GZIP_LEVEL   gzip level (default: 9; the tests use 1 on their large debug binary)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CARGO="${CARGO:-cargo}"
DIST_DIR="${DIST_DIR:-dist}"
DIST_KREW_OUT="${DIST_KREW_OUT:-krew-index/plugins/mlplatform.yaml}"
PLUGIN=mlplatform
BIN=kubectl-mlplatform
HOOK=scripts/kubectl_complete-mlplatform
HOMEPAGE="https://github.com/mlplatform-io/kubectl-mlplatform"

die() { echo "error: $*" >&2; exit 1; }

# Every release target: triple, krew os, krew arch. The first built target of an os/arch wins
# in the krew manifest (krew's selectors must not overlap), so musl comes before gnu.
RELEASE_TARGETS=(
    "x86_64-unknown-linux-musl linux amd64"
    "x86_64-unknown-linux-gnu linux amd64"
    "aarch64-unknown-linux-musl linux arm64"
    "x86_64-apple-darwin darwin amd64"
    "aarch64-apple-darwin darwin arm64"
    "x86_64-pc-windows-msvc windows amd64"
)

target_info() {
    local t
    for t in "${RELEASE_TARGETS[@]}"; do
        if [ "${t%% *}" = "$1" ]; then echo "$t"; return 0; fi
    done
    return 1
}

# The std of a target is installed when rustc's library dir for it holds libstd.
std_installed() {
    local dir
    dir="$(rustc --print target-libdir --target "$1" 2>/dev/null)" || return 1
    compgen -G "$dir/libstd-*" >/dev/null
}

HOST="$(rustc -vV | sed -n 's/^host: //p')"
pkgid="$("$CARGO" pkgid -p kubectl-mlplatform)" || die "cargo pkgid failed; run from the repository"
VERSION="${pkgid##*#}"
VERSION="${VERSION##*@}"
[[ "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || die "version '$VERSION' is not semver"
TAG="v$VERSION"
DIST_BASE_URL="${DIST_BASE_URL:-$HOMEPAGE/releases/download/$TAG}"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH="$(git log -1 --format=%ct 2>/dev/null || echo 0)"
fi

[[ "${DIST_GZIP_LEVEL:-9}" =~ ^[1-9]$ ]] || die "DIST_GZIP_LEVEL must be 1-9"
for f in LICENSE README.md "$HOOK"; do
    [ -f "$f" ] || die "$f is missing; it goes into every archive"
done

if [ -n "${DIST_TARGETS:-}" ]; then
    read -r -a targets <<<"$DIST_TARGETS"
else
    targets=()
    for t in "${RELEASE_TARGETS[@]}"; do
        triple="${t%% *}"
        if std_installed "$triple"; then
            targets+=("$triple")
        else
            echo "skipping $triple: its Rust std is not installed (see docs/release.md)" >&2
        fi
    done
fi
[ "${#targets[@]}" -gt 0 ] || die "no target to build; install a target's std (see docs/release.md)"
if [ -n "${DIST_BINARY:-}" ]; then
    [ "${#targets[@]}" -eq 1 ] || die "DIST_BINARY needs exactly one target in DIST_TARGETS"
    [ -x "$DIST_BINARY" ] || die "DIST_BINARY $DIST_BINARY is not an executable file"
fi

mkdir -p "$DIST_DIR"
DIST_DIR="$(cd "$DIST_DIR" && pwd)"
staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT

archives=()
for triple in "${targets[@]}"; do
    info="$(target_info "$triple")" || die "unknown target $triple; known: ${RELEASE_TARGETS[*]%% *}"
    exe="$BIN"
    case "$triple" in *windows*) exe="$BIN.exe" ;; esac
    if [ -n "${DIST_BINARY:-}" ]; then
        binary="$DIST_BINARY"
    else
        std_installed "$triple" || die "the Rust std for $triple is not installed (see docs/release.md)"
        echo "building $triple (release, --locked)" >&2
        if [ "$triple" = "$HOST" ]; then
            # The host needs no --target, so the dependencies `make build` compiled are reused.
            "$CARGO" build --release --locked -p kubectl-mlplatform >&2
            binary="target/release/$exe"
        else
            "$CARGO" build --release --locked -p kubectl-mlplatform --target "$triple" >&2
            binary="target/$triple/release/$exe"
        fi
    fi
    [ -f "$binary" ] || die "$binary was not built"

    name="$BIN-$TAG-$triple"
    dir="$staging/$name"
    mkdir -p "$dir"
    install -m 0755 "$binary" "$dir/$exe"
    case "$triple" in
        *windows*) ;;
        *) install -m 0755 "$HOOK" "$dir/kubectl_complete-$PLUGIN" ;;
    esac
    install -m 0644 LICENSE "$dir/LICENSE"
    install -m 0644 README.md "$dir/README.md"
    # Flat archive (krew's files from/to name the entries); same bytes for the same inputs.
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
        -C "$dir" -cf - . | gzip -n "-${DIST_GZIP_LEVEL:-9}" >"$DIST_DIR/$name.tar.gz"
    archives+=("$name.tar.gz $info")
    echo "wrote $DIST_DIR/$name.tar.gz" >&2
done

archive_names=()
for entry in "${archives[@]}"; do archive_names+=("${entry%% *}"); done
(cd "$DIST_DIR" && sha256sum -- "${archive_names[@]}" >SHA256SUMS)
echo "wrote $DIST_DIR/SHA256SUMS" >&2

# The krew manifest: one platform per os/arch, from the archives just written.
mkdir -p "$(dirname "$DIST_KREW_OUT")"
manifest="$staging/$PLUGIN.yaml"
cat >"$manifest" <<EOF
# Generated by scripts/dist.sh (make dist) from the release archives; do not edit by hand.
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: $PLUGIN
spec:
  version: $TAG
  homepage: $HOMEPAGE
  shortDescription: Connect ML platform vendors to Amazon EKS
  description: |
    Connects ML platform vendors (Concurrent for MLflow, Hopsworks, Arthur, the Amazon
    SageMaker operator, or any vendor described by a profile) to an Amazon EKS cluster in
    one idempotent command: the vendor's IAM role, aws-auth or access entries, the
    per-namespace service accounts and roles, the IAM OIDC provider and IRSA roles.
    Shows what it will change first (--dry-run), is undone by disconnect, checked by
    doctor, and enforced by an admission webhook (kubectl mlplatform webhook install).
  caveats: |
    Shell completion for "kubectl mlplatform <TAB>" (kubectl 1.26+): krew does not link
    completion hooks yet, so link it once:
      ln -sf "\${KREW_ROOT:-\$HOME/.krew}/store/$PLUGIN/$TAG/kubectl_complete-$PLUGIN" \\
        "\${KREW_ROOT:-\$HOME/.krew}/bin/kubectl_complete-$PLUGIN"
  platforms:
EOF
seen=""
for entry in "${archives[@]}"; do
    read -r archive triple os arch <<<"$entry"
    case " $seen " in *" $os/$arch "*) echo "krew: $triple left out, $os/$arch is already covered" >&2; continue ;; esac
    seen="$seen $os/$arch"
    sha="$(sha256sum "$DIST_DIR/$archive" | cut -d' ' -f1)"
    exe="$BIN"
    case "$os" in windows) exe="$BIN.exe" ;; esac
    {
        echo "  - selector:"
        echo "      matchLabels:"
        echo "        os: $os"
        echo "        arch: $arch"
        echo "    uri: $DIST_BASE_URL/$archive"
        echo "    sha256: $sha"
        echo "    files:"
        echo "    - from: $exe"
        echo "      to: ."
        if [ "$os" != windows ]; then
            echo "    - from: kubectl_complete-$PLUGIN"
            echo "      to: ."
        fi
        echo "    - from: LICENSE"
        echo "      to: ."
        echo "    bin: $exe"
    } >>"$manifest"
done
mv "$manifest" "$DIST_KREW_OUT"
echo "wrote $DIST_KREW_OUT" >&2
