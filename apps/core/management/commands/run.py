"""``manage.py run``: the web role under uvicorn; on the embedded default also the worker and scheduler."""

from __future__ import annotations

import logging
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run ICC's web role (ASGI: portal, API, websockets). Without a broker, tasks run embedded."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=None, help="web processes (default WEB_CONCURRENCY)")
        parser.add_argument("--embedded-threads", type=int, default=4, help="embedded worker threads")
        # TLS served by ICC itself (the admission webhook must be HTTPS; behind an ingress, TLS ends there).
        parser.add_argument("--ssl-certfile", default=None, help="PEM certificate (chain) to serve HTTPS with")
        parser.add_argument("--ssl-keyfile", default=None, help="PEM private key of --ssl-certfile")

    def handle(self, *args: Any, **options: Any) -> None:
        import uvicorn

        workers = options["workers"] or settings.WEB_CONCURRENCY
        if settings.ICC_TASKS_EMBEDDED and workers > 1:
            raise CommandError("the embedded default runs one web process; set REDIS_URL to run several")
        if bool(options["ssl_certfile"]) != bool(options["ssl_keyfile"]):
            raise CommandError("--ssl-certfile and --ssl-keyfile go together")
        scheme = "https" if options["ssl_certfile"] else "http"
        from apps.core import embedded

        if settings.ICC_TASKS_EMBEDDED:
            embedded.start(concurrency=options["embedded_threads"])
        loops = embedded.start_background()  # what apps registered: the cluster watcher
        self.stdout.write(
            f"ICC listening on {scheme}://{options['host']}:{options['port']}/ "
            f"({'embedded worker and scheduler' if settings.ICC_TASKS_EMBEDDED else 'web role'})"
        )
        # uvicorn re-raises SIGTERM after its graceful shutdown; as KeyboardInterrupt (which uvicorn.run
        # swallows) it lets the finally-block drain the embedded worker, as Ctrl-C already does.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            uvicorn.run(
                "iccapp.asgi:application",
                host=options["host"],
                port=options["port"],
                workers=workers if workers > 1 else None,
                log_config=None,
                access_log=False,
                proxy_headers=False,  # the peer stays the peer; apps.core.middleware.client_ip reads X-Forwarded-For
                lifespan="off",
                ws_max_size=1 << 20,
                ssl_certfile=options["ssl_certfile"],
                ssl_keyfile=options["ssl_keyfile"],
            )
        finally:
            embedded.stop_background(loops)
            if settings.ICC_TASKS_EMBEDDED:
                embedded.stop()
