"""One name per app: its label is its portal URL prefix, URL namespace and the prefix of its live topics;
addresses from before the rename redirect."""

from __future__ import annotations

import pytest
from django.apps import apps as django_apps
from django.test import Client
from django.urls import reverse

from apps.core import topics
from apps.core.registry import navigation

pytestmark = pytest.mark.django_db
ICC_APPS = {"users", "audit", "clusters", "scaler", "cron", "compliance", "traffic", "notifications", "calendar"}


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("/scaling/", "/scaler/"),
        ("/scaling/applications/7/?policy=new", "/scaler/applications/7/?policy=new"),
        ("/settings/tokens/", "/users/tokens/"),
        ("/applications/5/", "/clusters/applications/5/"),
    ],
)
def test_earlier_addresses_redirect(old, new):
    response = Client().get(old)
    assert response.status_code == 302
    assert response["Location"] == new


def test_every_app_area_lives_under_its_label():
    labels = {config.label for config in django_apps.get_app_configs()} & ICC_APPS
    for item in navigation():
        if item.key == "dashboard":
            assert item.url == "/"
            continue
        owner = item.url.strip("/").split("/")[0]
        assert owner in labels, (item.key, item.url)


@pytest.mark.parametrize(
    ("name", "kwargs", "path"),
    [
        ("scaler:fleet", {}, "/scaler/"),
        ("users:tokens", {}, "/users/tokens/"),
        ("audit:events", {}, "/audit/"),
        ("clusters:application", {"pk": 3}, "/clusters/applications/3/"),
    ],
)
def test_url_names_are_namespaced_by_the_app_label(name, kwargs, path):
    assert reverse(name, kwargs=kwargs) == path


def test_live_topics_are_prefixed_by_their_app_label():
    prefixes = set(topics._registry)
    owners = {prefix.split(".")[0] for prefix in prefixes}
    assert owners <= ICC_APPS | {"dashboard"}, owners
    assert topics.lookup("clusters.application.12").prefix == "clusters.application"
    assert topics.lookup("audit.history.users-user.3").prefix == "audit.history"
    assert topics.lookup("scaler.4").prefix == "scaler"
