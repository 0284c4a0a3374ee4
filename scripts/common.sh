# Shared helpers for scripts/run.sh and scripts/test.sh (sourced, not executed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${ICC_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*"; return 1; fi
}

APT_UPDATED=0
apt_install() {  # apt_install pkg... : installs only the packages that are missing
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  if [ "$APT_UPDATED" = 0 ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

ensure_python() {
  command -v "$PY" >/dev/null || apt_install python3
  "$PY" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
    || { log "ICC needs Python 3.11 or newer"; exit 1; }
  "$PY" -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
}

ensure_venv() {  # ensure_venv requirements-file
  local req="$1" stamp="$VENV/.installed-$(basename "$1")"
  ensure_python
  [ -x "$VENV/bin/python" ] || { log "creating virtualenv $VENV"; "$PY" -m venv "$VENV"; }
  local want; want="$(cat requirements.txt "$req" | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing Python packages from $req"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$req"
    echo "$want" > "$stamp"
  fi
}
