"""Apps extend other apps' object pages through the core registry: the application page links to its
Scaling page although clusters never imports the scaler."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.clusters.crypto import encrypt
from apps.clusters.models import Application, Cluster
from apps.core.registry import tabs_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop() -> Application:
    cluster = Cluster.objects.create(
        name="tabs",
        api_url="https://k.example",
        auth_mode="token",
        credentials=encrypt({"server": "https://k.example"}),
    )
    return Application.objects.create(cluster=cluster, namespace="prod", name="shop")


def test_the_application_page_links_to_its_scaling_page(shop, admin_persona):
    client = Client()
    assert client.login(username=admin_persona.username, password=admin_persona.password)
    page = client.get(f"/applications/{shop.pk}/").content.decode()
    assert f'href="/scaling/applications/{shop.pk}/" data-tab="scaling"' in page
    assert client.get(f"/scaling/applications/{shop.pk}/").status_code == 200


def test_tabs_are_listed_per_target_and_filtered_by_visibility(shop, admin_persona):
    assert [tab["key"] for tab in tabs_for("clusters.application", shop, admin_persona.user)] == ["scaling"]
    assert tabs_for("clusters.cluster", shop.cluster, admin_persona.user) == []
