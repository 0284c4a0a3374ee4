# syntax=docker/dockerfile:1
#
# ICC: one image, three process roles (see deploy/README.md).
#
#   web (default CMD):
#     uvicorn iccapp.asgi:application --host 0.0.0.0 --port 8000 --no-proxy-headers --no-access-log
#     (--no-proxy-headers: uvicorn never rewrites the peer address from X-Forwarded-For; ICC decides which
#     proxies to believe, TRUSTED_PROXIES, in apps.core.middleware.client_ip)
#     (processes: WEB_CONCURRENCY, read by uvicorn itself; or `python manage.py run --host 0.0.0.0 --port 8000`)
#   worker:
#     celery -A iccapp worker -Q default,reconcile,decisions,cron,analysis --pool threads --concurrency 8 --loglevel INFO
#     (Prometheus metrics on WORKER_METRICS_PORT, default 9808)
#   beat (any number of replicas: only the holder of the "beat" lease sends; apps.core.beat):
#     celery -A iccapp beat --loglevel INFO --schedule /tmp/celerybeat-schedule
#   migrations (one-off, before rolling out a new version):
#     python manage.py migrate --noinput
#
# Build: docker build -t icc:dev .
# No HEALTHCHECK: the same image runs three roles and only web serves HTTP; Kubernetes uses probes.

# --- builder: resolve and install the pinned runtime dependencies into a relocatable venv ---------------------
FROM python:3.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Every pinned dependency ships a manylinux wheel (psycopg[binary] bundles libpq), so no compiler is needed.
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: -r /tmp/requirements.txt
# Modules the roles load only at run time, chosen by URL scheme (Redis broker, channel layer, libpq, uvicorn's
# fast paths): a requirements.txt that misses one fails here, not in a crash-looping pod.
RUN /opt/venv/bin/pip check \
    && /opt/venv/bin/python -c "import kombu.transport.redis, channels_redis.core, psycopg, uvicorn, uvloop, httptools, websockets" \
    && /opt/venv/bin/python -c "import psycopg; assert psycopg.pq.__impl__ == 'binary', psycopg.pq.__impl__"

# --- runtime -------------------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=iccapp.settings \
    ICC_DATA_DIR=/var/lib/icc

RUN groupadd --system --gid 10001 icc \
    && useradd --system --uid 10001 --gid icc --home-dir /var/lib/icc --no-create-home \
       --shell /usr/sbin/nologin icc \
    && install -d -o icc -g icc -m 0750 /var/lib/icc

COPY --from=builder /opt/venv /opt/venv

# The code stays root-owned: the service user can read it but not change it.
WORKDIR /app
COPY manage.py pyproject.toml ./
COPY iccapp ./iccapp
COPY apps ./apps
COPY templates ./templates
COPY static ./static

# Static files are collected into the image ($ICC_DATA_DIR/static, served by WhiteNoise). Settings need a
# SECRET_KEY to load; this one exists only for the duration of this RUN and is never part of the image.
RUN SECRET_KEY=build-only-collectstatic-key-never-used-at-runtime-0123456789 \
    python manage.py collectstatic --noinput --verbosity 0 \
    && python -m compileall -q /app/iccapp /app/apps

USER 10001:10001
EXPOSE 8000

CMD ["uvicorn", "iccapp.asgi:application", "--host", "0.0.0.0", "--port", "8000", \
     "--no-proxy-headers", "--no-access-log", "--lifespan", "off", "--ws-max-size", "1048576", \
     "--timeout-graceful-shutdown", "20"]
