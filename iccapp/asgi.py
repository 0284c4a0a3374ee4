"""ASGI entry point of the web role: HTTP (Django) and websockets (Channels) on one server."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iccapp.settings")
django_asgi_app = get_asgi_application()

from apps.core.heartbeats import start_role  # noqa: E402 - needs Django set up first

start_role("web")  # the System page and /metrics list this process (role, version) while it runs

from channels.auth import AuthMiddlewareStack  # noqa: E402 - needs Django set up first
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from iccapp.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
