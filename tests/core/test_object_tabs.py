"""Apps extend other apps' object pages through the core registry: the application page links to its
Scaling page although clusters never imports the scaler."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.clusters.models import Application
from apps.core.registry import tabs_for
from tests.support.rows import cluster_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop() -> Application:
    cluster = cluster_row("tabs")
    return Application.objects.create(cluster=cluster, namespace="prod", name="shop")


def test_the_application_page_links_to_its_scaling_page(shop, admin_persona):
    client = Client()
    assert client.login(username=admin_persona.username, password=admin_persona.password)
    page = client.get(f"/clusters/applications/{shop.pk}/").content.decode()
    assert f'href="/scaler/applications/{shop.pk}/" data-tab="scaler"' in page
    assert client.get(f"/scaler/applications/{shop.pk}/").status_code == 200


def test_tabs_are_listed_per_target_and_filtered_by_visibility(shop, admin_persona):
    assert [tab["key"] for tab in tabs_for("clusters.application", shop, admin_persona.user)] == [
        "scaler",
        "cron",
        "compliance",
        "traffic",
    ]
    assert tabs_for("clusters.cluster", shop.cluster, admin_persona.user) == []
