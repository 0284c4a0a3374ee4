"""The kubeconfig of a registration or an edit, kept encrypted in the session between attempts (never echoed
into the page), so that a person picks a context without uploading it again."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest

from apps.clusters.credentials import kubeconfig_contexts
from apps.clusters.crypto import decrypt, encrypt
from apps.clusters.forms import (
    ConnectionForm,
)
from apps.clusters.models import AuthMode
from apps.core.errors import DomainError

STASH_SECONDS = 900
SECRET_FIELDS = ("token", "ca_data", "kubeconfig_text")  # kept out of error reports


@dataclass
class KubeconfigState:
    contexts: list[str] = field(default_factory=list)
    current: str = ""
    kept: bool = False  # received earlier, kept for this form


def stash_key(scope: str) -> str:
    return f"clusters.kubeconfig.{scope}"


def stash(request: HttpRequest, scope: str, text: str) -> None:
    request.session[stash_key(scope)] = {"blob": encrypt({"text": text}).decode(), "at": time.time()}


def unstash(request: HttpRequest, scope: str) -> str:
    entry = request.session.get(stash_key(scope))
    if not isinstance(entry, dict) or time.time() - float(entry.get("at", 0)) > STASH_SECONDS:
        request.session.pop(stash_key(scope), None)
        return ""
    try:
        return str(decrypt(str(entry["blob"]).encode()).get("text") or "")
    except (DomainError, KeyError):
        request.session.pop(stash_key(scope), None)
        return ""


def drop_stash(request: HttpRequest, scope: str) -> None:
    request.session.pop(stash_key(scope), None)


def kubeconfig_from_form(request: HttpRequest, form: ConnectionForm, scope: str, state: KubeconfigState) -> str | None:
    """The kubeconfig to use, or None with an error on the form. Several contexts and none chosen: the
    contexts are listed (the kubeconfig kept) so the user picks one."""
    if "kubeconfig" in form.errors:  # the upload itself was refused (size, encoding)
        return None
    text = form.kubeconfig_given()
    if not text:
        text = unstash(request, scope)
        state.kept = bool(text)
    if not text:
        form.add_error("kubeconfig", "upload a kubeconfig file or paste it")
        return None
    try:
        state.contexts, state.current = kubeconfig_contexts(text)
    except DomainError as exc:
        drop_stash(request, scope)
        state.kept = False
        form.add_error("kubeconfig", exc.message)
        return None
    stash(request, scope, text)
    if len(state.contexts) > 1 and not form.cleaned_data.get("context"):
        form.add_error("context", f"this kubeconfig has {len(state.contexts)} contexts: choose one")
        return None
    return text


def wants_kubeconfig(form: ConnectionForm) -> bool:
    return form.data.get("auth_mode") == AuthMode.KUBECONFIG


def service_error(form: Any, exc: DomainError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


def connection_state(request: HttpRequest, scope: str) -> KubeconfigState:
    """On a first visit, what a kept kubeconfig offers (after an earlier attempt in this session)."""
    state = KubeconfigState()
    text = unstash(request, scope)
    if text:
        try:
            state.contexts, state.current = kubeconfig_contexts(text)
            state.kept = True
        except DomainError:
            drop_stash(request, scope)
    return state
