"""Live topics of the compliance pages.

* ``compliance`` (the compliance page): any logged-in user may follow; the push is a trigger that makes the page
  re-fetch its live part (score, trend, overview, results) with its own filters, restricted when it is read.
* ``compliance.application.<id>`` (the page filtered to one application, its Compliance tab): whoever may read
  that application.

Publishing: :mod:`apps.compliance.events`, after commit (the evaluation and scan tasks call it).
"""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.urls import reverse

from apps.compliance import selectors
from apps.compliance.events import APPLICATION, RESULTS
from apps.core import topics

INCLUDE = "#compliance-filters, #compliance-page"


def authorize(user: Any, name: str) -> bool:
    """Rule: the compliance page, any logged-in user; one application's, whoever may read that application."""
    return topics.page_or_object(
        user,
        name,
        page=RESULTS,
        prefix=APPLICATION,
        readable=lambda pk: selectors.applications(user).filter(pk=pk).exists(),
    )


def render(user: Any, name: str, payload: dict[str, Any]) -> str:
    if name != RESULTS and not authorize(user, name):
        return ""
    return render_to_string(
        "core/_refresh.html",
        {"target": "compliance-live", "url": reverse("compliance:results-table"), "include": INCLUDE},
    )


def register() -> None:
    topics.register(RESULTS, authorize=authorize, render=render)


register()
