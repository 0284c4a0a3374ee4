"""icc-agent: request samples for ICC's traffic analysis, from ASGI and WSGI applications.

``ASGIMiddleware(app)`` / ``WSGIMiddleware(app)`` sample requests (route template, method, status, duration,
response size, a bounded SHA-256 of the body, caching headers) and send them in batches from a background thread
to ``<ICC_URL>/traffic/v1/samples``, failing open. See the README for the settings.
"""

from __future__ import annotations

from icc_agent.agent import Agent
from icc_agent.asgi import ASGIMiddleware
from icc_agent.config import Config, load
from icc_agent.wsgi import WSGIMiddleware

__all__ = ["ASGIMiddleware", "Agent", "Config", "WSGIMiddleware", "load"]
__version__ = "0.1.0"
