#!/usr/bin/env bash
# Build (once) and cache a real Kubernetes control plane (v1.20.2) for the tests.
#
# kube-apiserver, kube-controller-manager and kube-scheduler are built from Debian's `kubernetes`
# source package (1.20.5+really1.20.2) with Debian's Go, following shared/REAL_COMPONENTS.md.
# etcd comes from Debian's etcd-server and is linked into the same directory.
#
# Binaries live OUTSIDE the repository in ${ICC_KUBE_CACHE:-$HOME/.cache/icc-kube}/v1.20.2/bin/.
# Idempotent: when they exist the script exits at once. The bin directory is always the last line of stdout.
# A cold build takes about 7 minutes on 2 cores and needs root (apt) for the packages it installs.
set -euo pipefail

KUBE_VERSION=v1.20.2
CACHE="${ICC_KUBE_CACHE:-$HOME/.cache/icc-kube}"
BIN="$CACHE/$KUBE_VERSION/bin"
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler)

log() { echo "kube-binaries: $*" >&2; }

have_all() {
    local c
    for c in "${COMPONENTS[@]}"; do
        [[ -x "$BIN/$c" ]] || return 1
    done
    [[ -x "$BIN/etcd" ]] || return 1
}

link_etcd() {
    local etcd
    etcd="$(command -v etcd || true)"
    [[ -z "$etcd" && -x /usr/bin/etcd ]] && etcd=/usr/bin/etcd
    [[ -n "$etcd" ]] || return 1
    ln -sfn "$etcd" "$BIN/etcd.new" && mv -Tf "$BIN/etcd.new" "$BIN/etcd"
}

# Fast path: everything already cached.
if have_all; then
    echo "$BIN"
    exit 0
fi

mkdir -p "$BIN"
# One build at a time (a test run and a developer may both call this).
exec 9>"$CACHE/$KUBE_VERSION/.lock"
if ! flock -n 9; then
    log "another build is running; waiting for it"
    flock 9
fi
if have_all; then
    echo "$BIN"
    exit 0
fi

as_root() {
    if [[ "$(id -u)" == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        log "need root to run: $*"
        return 1
    fi
}

PACKAGES=(golang-go rsync jq dpkg-dev golang-github-modern-go-reflect2-dev etcd-server etcd-client)
missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

need_sources=0
if [[ ! -x "$BIN/kube-apiserver" || ! -x "$BIN/kube-controller-manager" || ! -x "$BIN/kube-scheduler" ]]; then
    # deb-src entries are needed for `apt-get source`; apt-get update only if we add them or install something.
    if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        need_sources=1
    fi
fi

if (( need_sources )); then
    log "adding deb-src entries (deb822) in /etc/apt/sources.list.d/icc-kube-src.sources"
    as_root tee /etc/apt/sources.list.d/icc-kube-src.sources >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi

if (( need_sources )) || (( ${#missing[@]} )); then
    log "apt-get update"
    as_root apt-get update -qq >&2
fi
if (( ${#missing[@]} )); then
    log "installing: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if [[ ! -x "$BIN/kube-apiserver" || ! -x "$BIN/kube-controller-manager" || ! -x "$BIN/kube-scheduler" ]]; then
    start=$(date +%s)
    # We hold the lock: any build.* directory left here is from a killed build. Remove it (they are large).
    rm -rf "$CACHE/$KUBE_VERSION"/build.*
    WORK="$(mktemp -d "$CACHE/$KUBE_VERSION/build.XXXXXX")"
    # The build tree (source, Go build cache, _output) is a few GB: always remove it.
    trap 'rm -rf "$WORK"' EXIT
    trap 'exit 130' INT TERM HUP
    cd "$WORK"
    log "downloading Debian's kubernetes source package into $WORK"
    if ! apt-get source --download-only kubernetes >&2 2>"$WORK/apt-source.log"; then
        # The deb-src indices may be missing (lists cleaned): refresh once and retry.
        log "apt-get source failed; apt-get update and retry"
        as_root apt-get update -qq >&2
        apt-get source --download-only kubernetes >&2 2>"$WORK/apt-source.log" || {
            cat "$WORK/apt-source.log" >&2
            exit 1
        }
    fi
    orig="$(ls kubernetes_*.orig.tar.* | head -n1)"
    mkdir src
    tar -xf "$orig" -C src
    srcdir="$WORK/src"
    if [[ ! -f "$srcdir/Makefile" ]]; then
        srcdir="$(dirname "$(ls -d "$WORK"/src/*/Makefile | head -n1)")"
    fi
    cd "$srcdir"

    # Vendored reflect2 1.0.1 crashes under Go >= 1.18: use Debian's patched copy.
    rm -rf vendor/github.com/modern-go/reflect2
    cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2
    rm -f vendor/github.com/modern-go/reflect2/go.mod vendor/github.com/modern-go/reflect2/go.sum

    # GOPATH mode, as Debian's rules do.
    mkdir -p .go/src/k8s.io
    ln -s ../../.. .go/src/k8s.io/kubernetes
    log "building ${COMPONENTS[*]} (about 7 minutes on 2 cores)"
    env GOPATH="$PWD/.go" GOCACHE="$WORK/gocache" CGO_ENABLED=0 \
        KUBE_GIT_VERSION="$KUBE_VERSION" KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 KUBE_GIT_TREE_STATE=clean \
        make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" >"$WORK/make.log" 2>&1 || {
        tail -n 60 "$WORK/make.log" >&2
        exit 1
    }
    for c in "${COMPONENTS[@]}"; do
        built="$(find _output -type f -name "$c" -perm -u+x | head -n1)"
        [[ -n "$built" ]] || { log "build produced no $c"; exit 1; }
        # Same filesystem (the build dir is under the cache dir): rename is atomic.
        mv -f "$built" "$BIN/$c.new"
        mv -f "$BIN/$c.new" "$BIN/$c"
    done
    log "built in $(( $(date +%s) - start ))s"
fi

link_etcd || { log "etcd not found on PATH (package etcd-server)"; exit 1; }
have_all || { log "binaries incomplete in $BIN"; exit 1; }
echo "$BIN"
