#!/usr/bin/env bash
# Release archives per target, SHA256SUMS, and the krew manifest generated from the archives
# (so every sha256 in it matches). docs/release.md says how a release is cut.
#
#   scripts/dist.sh                   make dist: build every release target whose Rust std is
#                                     installed, pack each, write SHA256SUMS and the manifest
#   scripts/dist.sh pack              build (or take DIST_BINARY) and pack DIST_TARGETS only:
#                                     archives in DIST_DIR, no SHA256SUMS, no manifest (one job
#                                     per target in .github/workflows/release.yml)
#   scripts/dist.sh manifest DIR [VERSION]
#                                     SHA256SUMS and the krew manifest from the archives of
#                                     VERSION (default: the workspace's) that DIR already holds,
#                                     made elsewhere (the release workflow's last job)
#
# Environment (all optional):
#   DIST_DIR          output directory of the build and pack modes (default: dist)
#   DIST_TARGETS      target triples to build (default: every release target whose std is
#                     installed; the others are listed as skipped)
#   DIST_BINARY       use this already-built binary instead of building (one target only;
#                     the tests and the release workflow use it)
#   DIST_PROFILE      cargo profile to build with (default: dist, see Cargo.toml)
#   DIST_KREW_OUT     krew manifest path (default: krew-index/plugins/mlplatform.yaml)
#   DIST_BASE_URL     download URL of the archives (default: the GitHub release of the version)
#   SOURCE_DATE_EPOCH archive timestamps (default: the last commit's), for reproducible archives
#   DIST_GZIP_LEVEL   gzip level (default: 9; the tests use 1 on their large debug binary)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CARGO="${CARGO:-cargo}"
DIST_DIR="${DIST_DIR:-dist}"
DIST_PROFILE="${DIST_PROFILE:-dist}"
DIST_KREW_OUT="${DIST_KREW_OUT:-krew-index/plugins/mlplatform.yaml}"
PLUGIN=mlplatform
BIN=kubectl-mlplatform
HOOK=scripts/kubectl_complete-mlplatform
HOMEPAGE="https://github.com/mlplatform-io/kubectl-mlplatform"

die() { echo "error: $*" >&2; exit 1; }
usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# Every release target: triple, krew os, krew arch. The first target of an os/arch in this
# list wins in the krew manifest (krew's selectors must not overlap), so musl comes before gnu.
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

exe_of() {
    case "$1" in *windows*) echo "$BIN.exe" ;; *) echo "$BIN" ;; esac
}

# The files krew moves out of an archive, binary first; Windows has no completion hook (it is a
# shell script).
files_of() {
    exe_of "$1"
    case "$1" in *windows*) ;; *) echo "kubectl_complete-$PLUGIN" ;; esac
    echo LICENSE
}

# The std of a target is installed when rustc's library dir for it holds libstd.
std_installed() {
    local dir
    dir="$(rustc --print target-libdir --target "$1" 2>/dev/null)" || return 1
    compgen -G "$dir/libstd-*" >/dev/null
}

# GNU tar and sha256sum: on macOS they are gtar (Homebrew's gnu-tar) and shasum -a 256.
# (On Windows runners, Git Bash's /usr/bin/tar is GNU tar; System32's tar.exe is not.)
gnu_tar() {
    local tar
    for tar in gtar tar /usr/bin/tar; do
        if "$tar" --version 2>/dev/null | grep -q 'GNU tar'; then
            "$tar" "$@"
            return
        fi
    done
    die "GNU tar is needed for reproducible archives (macOS: brew install gnu-tar)"
}

sha256() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum -- "$@"
    else
        shasum -a 256 -- "$@"
    fi
}

check_version() {
    [[ "$1" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || die "version '$1' is not semver"
}

workspace_version() {
    local pkgid version
    pkgid="$("$CARGO" pkgid -p kubectl-mlplatform)" || die "cargo pkgid failed; run from the repository"
    version="${pkgid##*#}"
    echo "${version##*@}"
}

# build_and_pack: DIST_TARGETS (or every installed one), packed into DIST_DIR; sets `archives`
# to "NAME.tar.gz TRIPLE OS ARCH" lines.
build_and_pack() {
    local targets t triple info exe binary name dir out
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
        if [ ! -f "$DIST_BINARY" ] || [ ! -x "$DIST_BINARY" ]; then
            die "DIST_BINARY $DIST_BINARY is not an executable file"
        fi
    fi

    mkdir -p "$DIST_DIR"
    DIST_DIR="$(cd "$DIST_DIR" && pwd)"
    out="${CARGO_TARGET_DIR:-target}"
    archives=()
    for triple in "${targets[@]}"; do
        info="$(target_info "$triple")" || die "unknown target $triple; known: ${RELEASE_TARGETS[*]%% *}"
        exe="$(exe_of "$triple")"
        if [ -n "${DIST_BINARY:-}" ]; then
            binary="$DIST_BINARY"
        else
            std_installed "$triple" || die "the Rust std for $triple is not installed (see docs/release.md)"
            echo "building $triple (profile $DIST_PROFILE, --locked)" >&2
            if [ "$triple" = "$HOST" ]; then
                # The host needs no --target, so dependencies built for the host are reused.
                "$CARGO" build --profile "$DIST_PROFILE" --locked -p kubectl-mlplatform --bin "$BIN" >&2
                binary="$out/$DIST_PROFILE/$exe"
            else
                "$CARGO" build --profile "$DIST_PROFILE" --locked -p kubectl-mlplatform --bin "$BIN" --target "$triple" >&2
                binary="$out/$triple/$DIST_PROFILE/$exe"
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
        gnu_tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
            -C "$dir" -cf - . | gzip -n "-${DIST_GZIP_LEVEL:-9}" >"$DIST_DIR/$name.tar.gz"
        archives+=("$name.tar.gz $info")
        echo "wrote $DIST_DIR/$name.tar.gz" >&2
    done
}

# collect DIR: the archives of TAG in DIR, each checked to hold what the manifest names; sets
# `archives` like build_and_pack, in RELEASE_TARGETS order.
collect() {
    local dir="$1" t triple name path entry f found
    [ -d "$dir" ] || die "$dir is not a directory"
    archives=()
    for path in "$dir/$BIN-$TAG-"*; do
        [ -e "$path" ] || continue
        name="${path##*/}"
        triple="${name#"$BIN-$TAG-"}"
        triple="${triple%.tar.gz}"
        [[ "$name" == *.tar.gz ]] || die "$name: release archives are .tar.gz"
        target_info "$triple" >/dev/null || die "$name: unknown target $triple; known: ${RELEASE_TARGETS[*]%% *}"
    done
    for t in "${RELEASE_TARGETS[@]}"; do
        triple="${t%% *}"
        name="$BIN-$TAG-$triple.tar.gz"
        [ -f "$dir/$name" ] || continue
        entry="$(gzip -dc "$dir/$name" | gnu_tar -tf - | sed 's#^\./##')" || die "$name is not a gzipped tar archive"
        for f in $(files_of "$triple"); do
            found=no
            while IFS= read -r e; do [ "$e" = "$f" ] && found=yes; done <<<"$entry"
            [ "$found" = yes ] || die "$name has no $f (krew's files name it)"
        done
        archives+=("$name $t")
    done
    [ "${#archives[@]}" -gt 0 ] || die "no $BIN-$TAG-<target>.tar.gz in $dir"
    DIST_DIR="$(cd "$dir" && pwd)"
}

# SHA256SUMS over every archive, and the krew manifest: one platform per os/arch.
write_sums_and_manifest() {
    local names entry archive triple os arch seen sha manifest f
    names=()
    for entry in "${archives[@]}"; do names+=("${entry%% *}"); done
    (cd "$DIST_DIR" && sha256 "${names[@]}" | LC_ALL=C sort -k2 >SHA256SUMS)
    echo "wrote $DIST_DIR/SHA256SUMS" >&2

    mkdir -p "$(dirname "$DIST_KREW_OUT")"
    manifest="$staging/$PLUGIN.yaml"
    cat >"$manifest" <<EOF
# Generated by scripts/dist.sh from the release archives; do not edit by hand.
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
    Shell completion for "kubectl mlplatform <TAB>" (kubectl 1.26+, not on Windows): krew
    does not link completion hooks yet, so link it once:
      ln -sf "\${KREW_ROOT:-\$HOME/.krew}/store/$PLUGIN/$TAG/kubectl_complete-$PLUGIN" \\
        "\${KREW_ROOT:-\$HOME/.krew}/bin/kubectl_complete-$PLUGIN"
  platforms:
EOF
    seen=""
    for entry in "${archives[@]}"; do
        read -r archive triple os arch <<<"$entry"
        case " $seen " in *" $os/$arch "*) echo "krew: $triple left out, $os/$arch is already covered" >&2; continue ;; esac
        seen="$seen $os/$arch"
        sha="$(sha256 "$DIST_DIR/$archive" | cut -d' ' -f1)"
        {
            echo "  - selector:"
            echo "      matchLabels:"
            echo "        os: $os"
            echo "        arch: $arch"
            echo "    uri: $DIST_BASE_URL/$archive"
            echo "    sha256: $sha"
            echo "    files:"
            for f in $(files_of "$triple"); do
                echo "    - from: $f"
                echo "      to: ."
            done
            echo "    bin: $(exe_of "$triple")"
        } >>"$manifest"
    done
    mv "$manifest" "$DIST_KREW_OUT"
    echo "wrote $DIST_KREW_OUT" >&2
}

mode="${1:-build}"
case "$mode" in
    build | pack) [ "$#" -le 1 ] || { usage >&2; exit 2; } ;;
    manifest) if [ "$#" -lt 2 ] || [ "$#" -gt 3 ]; then usage >&2; exit 2; fi ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown mode $mode" >&2; usage >&2; exit 2 ;;
esac

if [ "$mode" = manifest ] && [ -n "${3:-}" ]; then
    VERSION="${3#v}"
else
    VERSION="$(workspace_version)"
fi
check_version "$VERSION"
TAG="v$VERSION"
DIST_BASE_URL="${DIST_BASE_URL:-$HOMEPAGE/releases/download/$TAG}"
staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT

if [ "$mode" = manifest ]; then
    collect "$2"
    write_sums_and_manifest
    exit 0
fi

HOST="$(rustc -vV | sed -n 's/^host: //p')"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH="$(git log -1 --format=%ct 2>/dev/null || echo 0)"
fi
[[ "${DIST_GZIP_LEVEL:-9}" =~ ^[1-9]$ ]] || die "DIST_GZIP_LEVEL must be 1-9"
for f in LICENSE README.md "$HOOK"; do
    [ -f "$f" ] || die "$f is missing; it goes into every archive"
done

build_and_pack
[ "$mode" = pack ] || write_sums_and_manifest
