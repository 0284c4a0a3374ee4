"""Live topics of the traffic pages.

* ``traffic`` (the Traffic page): any logged-in user may follow; the push makes the page re-fetch its table with
  its own range, restricted when it is read.
* ``traffic.application.<id>`` (an application's Traffic tab): whoever may read that application.

Publishing: :mod:`apps.traffic.events`, after a flush commits (throttled per application).
"""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.urls import reverse

from apps.core import topics
from apps.traffic import selectors
from apps.traffic.events import APPLICATION, TRAFFIC


def _application_id(name: str) -> int | None:
    return topics.numbered(name, APPLICATION)


def authorize(user: Any, name: str) -> bool:
    """Rule: the Traffic page, any logged-in user; one application's tab, whoever may read that application."""
    return topics.page_or_object(
        user, name, page=TRAFFIC, prefix=APPLICATION, readable=lambda pk: selectors.application(user, pk) is not None
    )


def _refresh(target: str, url: str, include: str) -> str:
    return render_to_string("core/_refresh.html", {"target": target, "url": url, "include": include})


def render(user: Any, name: str, payload: dict[str, Any]) -> str:
    if not authorize(user, name):
        return ""
    if name == TRAFFIC:
        return _refresh("traffic-live", reverse("traffic:table"), "#traffic-filters")
    pk = _application_id(name)
    assert pk is not None
    return _refresh("traffic-live", reverse("traffic:application-live", args=[pk]), "#traffic-filters")


def register() -> None:
    topics.register(TRAFFIC, authorize=authorize, render=render)


register()
