"""Registries that apps fill in their ``AppConfig.ready()``, so core never imports an app above it.

* **Navigation**: each app adds its portal area (``nav_register``); the shell lists them in order.
* **Placeholder areas**: an app whose pages are still to come registers a title and an empty-state text
  (``area_register``); core serves ``/<app>/`` for it until the app has its own URLs.
* **Object tabs**: an app adds a tab to another app's object page (the Scaling tab on an application),
  as NetBox plugins extend object views; the page owner renders ``tabs_for(target, obj, user)`` and never
  imports the app that added the tab.
* **Background loops**: threads the embedded single-machine runner starts and stops beside the web server
  (the cluster watcher); ``manage.py run`` calls ``background_start()`` / ``background_stop()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    url: str
    order: int


@dataclass(frozen=True)
class Area:
    key: str
    title: str
    empty: str


@dataclass(frozen=True)
class ObjectTab:
    """A tab on ``target``'s object page: ``url(obj)`` to link, ``visible(user, obj)`` to decide."""

    target: str  # "<app_label>.<model_name>", e.g. "clusters.application"
    key: str
    label: str
    url: Callable[[Any], str]
    visible: Callable[[Any, Any], bool]
    order: int = 100


@dataclass(frozen=True)
class BackgroundLoop:
    name: str
    start: Callable[[], None]
    stop: Callable[[], None]
    enabled: Callable[[], bool]


_navigation: dict[str, NavItem] = {}
_areas: dict[str, Area] = {}
_tabs: dict[tuple[str, str], ObjectTab] = {}
_loops: dict[str, BackgroundLoop] = {}


def nav_register(key: str, label: str, url: str, *, order: int) -> None:
    """Add (or replace) a portal area in the navigation; ``order`` sorts the menu."""
    _navigation[key] = NavItem(key, label, url, order)


def navigation() -> list[NavItem]:
    return sorted(_navigation.values(), key=lambda item: (item.order, item.key))


def area_register(key: str, title: str, empty: str) -> None:
    """A placeholder page at ``/<key>/`` for an app whose portal is still to come."""
    _areas[key] = Area(key, title, empty)


def placeholder_register(key: str, label: str, *, order: int, empty: str) -> None:
    """An app whose pages are still to come: its menu entry and the placeholder page behind it."""
    nav_register(key, label, f"/{key}/", order=order)
    area_register(key, label, empty)


def area(key: str) -> Area | None:
    return _areas.get(key)


def tab_register(tab: ObjectTab) -> None:
    _tabs[(tab.target, tab.key)] = tab


def tabs_for(target: str, obj: Any, user: Any) -> list[dict[str, str]]:
    """The tabs other apps added to ``target``'s page that ``user`` may see for ``obj``."""
    tabs = sorted((t for (name, _), t in _tabs.items() if name == target), key=lambda t: (t.order, t.key))
    return [{"key": t.key, "label": t.label, "url": t.url(obj)} for t in tabs if t.visible(user, obj)]


def background_register(
    name: str, *, start: Callable[[], None], stop: Callable[[], None], enabled: Callable[[], bool]
) -> None:
    """A loop the embedded runner starts when ``enabled()`` (read at start, after settings are final)."""
    _loops[name] = BackgroundLoop(name, start, stop, enabled)


def background_start() -> list[str]:
    started = []
    for loop in _loops.values():
        if loop.enabled():
            loop.start()
            started.append(loop.name)
            logger.info("embedded %s started", loop.name)
    return started


def background_stop(names: list[str]) -> None:
    for name in reversed(names):
        try:
            _loops[name].stop()
        except Exception:  # stopping one loop must not keep the others running
            logger.exception("could not stop the embedded %s", name)
