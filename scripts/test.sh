#!/usr/bin/env bash
# Set up everything the tests need (Debian packages, PostgreSQL, Redis, Python packages) and run
# the whole suite against real PostgreSQL and Redis, after lint, type and Django checks.
# Extra arguments go to pytest, e.g. scripts/test.sh -k websocket
source "$(dirname "$0")/common.sh"

DEFAULT_DB="postgres://postgres@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/icc"
export DATABASE_URL="${DATABASE_URL:-$DEFAULT_DB}"
export REDIS_URL="${REDIS_URL:-redis://${REDIS_HOST:-127.0.0.1}:${REDIS_PORT:-6379}/15}"
# A fixed key for the test database only (pyproject.toml's pytest env uses the same default).
export SECRET_KEY="${SECRET_KEY:-test-only-key-0123456789abcdefghijklmnopqrstuvwxyz-not-for-production}"
# A test-only Fernet key for stored cluster credentials (the suite's own clusters exist only in tests).
export ICC_ENCRYPTION_KEYS="${ICC_ENCRYPTION_KEYS:-dGVzdC1vbmx5LWZlcm5ldC1rZXktbm90LWZvci1wcmQ=}"
# The suite runs production-like settings (PostgreSQL, DEBUG off) over plain HTTP against loopback servers.
export SECURE_COOKIES="${SECURE_COOKIES:-false}"
export OUTBOUND_ALLOWED_CIDRS="${OUTBOUND_ALLOWED_CIDRS:-127.0.0.0/8,::1/128}"

url_part() { python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(p.hostname or "127.0.0.1", p.port or int(sys.argv[2]))' "$1" "$2"; }
reachable() { python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 2).close()' "$1" "$2" 2>/dev/null; }
is_local() { case "$1" in 127.*|localhost|::1) return 0;; *) return 1;; esac; }

ensure_postgres() {
  read -r host port < <(url_part "$DATABASE_URL" 5432)
  reachable "$host" "$port" && return 0
  is_local "$host" || { log "PostgreSQL at $host:$port is unreachable (DATABASE_URL)"; exit 1; }
  if ! command -v pg_ctlcluster >/dev/null; then
    apt_install postgresql
    if [ "$DATABASE_URL" = "$DEFAULT_DB" ]; then  # a fresh install wants a password over TCP
      local version; version="$(ls /etc/postgresql | sort -V | tail -1)"
      as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
      as_root su postgres -c "psql -qc \"ALTER ROLE postgres PASSWORD 'postgres'\""
      export DATABASE_URL="postgres://postgres:postgres@${host}:${port}/icc"
    fi
  fi
  log "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
  for _ in $(seq 30); do reachable "$host" "$port" && return 0; sleep 1; done
  log "PostgreSQL did not come up on $host:$port"; exit 1
}

ensure_redis() {
  read -r host port < <(url_part "$REDIS_URL" 6379)
  reachable "$host" "$port" && return 0
  is_local "$host" || { log "Redis at $host:$port is unreachable (REDIS_URL)"; exit 1; }
  command -v redis-server >/dev/null || apt_install redis-server
  log "starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$port" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 30); do reachable "$host" "$port" && return 0; sleep 1; done
  log "Redis did not come up on $host:$port"; exit 1
}

apt_install chromium git wrk  # wrk: bench/api.py, which the suite runs with --quick
# A real Prometheus for the scaler tests (tests/support/prometheus.py starts it; Debian does not auto-start it here).
apt_install prometheus
# Node.js for the test OpenID Connect provider: Debian's packages only where node/npm are missing (a
# machine may carry a newer Node.js whose bundled npm conflicts with Debian's npm package).
command -v node >/dev/null || apt_install nodejs
command -v npm >/dev/null || apt_install npm
ensure_postgres
ensure_redis
ensure_venv requirements-dev.txt
export PATH="$VENV/bin:$PATH"
# A real kube-apiserver (v1.20.2, built from Debian's source package; cached outside the repo, so only
# the first run on a machine pays the ~4-7 minute build).
log "Kubernetes binaries"
./scripts/kube-binaries.sh
# The OpenID Connect provider the login tests start (tests/support/oidc_provider, npm oidc-provider).
npm ci --prefix tests/support/oidc_provider --no-audit --no-fund

# The Django checks connect to DATABASE_URL's database itself (pytest uses test_<name>): create it.
python - <<'PY'
import os, urllib.parse as u, psycopg
from psycopg import sql
url = u.urlsplit(os.environ["DATABASE_URL"])
name = url.path.lstrip("/") or "icc"
admin = url._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)
with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        print(f"created database {name}")
PY

log "ruff"
ruff check .
ruff format --check .
log "mypy"
mypy .
log "lint-imports (layers: iccapp > scaler|cron|compliance|traffic > clusters > users > audit > core)"
lint-imports
log "Django system checks and migrations"
python manage.py check --fail-level WARNING
python manage.py makemigrations --check --dry-run
log "pytest (PostgreSQL: ${DATABASE_URL%%@*}@..., Redis: $REDIS_URL)"
exec python -m pytest "$@"
