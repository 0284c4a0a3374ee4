#!/usr/bin/env bash
# Set up and run ICC on its embedded default: SQLite, in-memory channel layer, embedded worker and
# scheduler, all in one process on http://127.0.0.1:8000 (HOST/PORT override). No external services.
source "$(dirname "$0")/common.sh"
ensure_venv requirements.txt
export PYTHONUNBUFFERED=1
log "migrating the database"
"$VENV/bin/python" manage.py migrate --noinput -v0
"$VENV/bin/python" manage.py icc_bootstrap_admin
"$VENV/bin/python" manage.py collectstatic --noinput -v0
log "starting ICC on http://${HOST:-127.0.0.1}:${PORT:-8000}/ (Ctrl-C stops it)"
exec "$VENV/bin/python" manage.py run --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}"
