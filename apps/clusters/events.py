"""Live topics of the clusters app and their payloads: the one place their names are built.

Pages subscribe to these names; services and the reconciler publish to them after commit."""

from __future__ import annotations

from typing import TypedDict

from apps.core.events import publish_many

CLUSTERS = "clusters"  # the clusters list
APPLICATIONS = "clusters.applications"  # the applications list
CLUSTER = "clusters.cluster"  # prefix of one cluster's page: ``clusters.cluster.<id>``
APPLICATION = "clusters.application"  # prefix of one application's page: ``clusters.application.<id>``


def cluster(cluster_id: int) -> str:
    """One cluster's page."""
    return f"{CLUSTER}.{cluster_id}"


def application(application_id: int) -> str:
    """One application's page."""
    return f"{APPLICATION}.{application_id}"


class ListChanged(TypedDict):
    cluster: int  # the cluster whose rows changed


class ObjectChanged(TypedDict, total=False):
    reason: str  # updated, paused, resumed, health, sync, relist
    kind: str  # the observed kind a watch event was about
    name: str
    event: str  # ADDED, MODIFIED, DELETED, MOVED, RELIST


Item = tuple[str, dict[str, object]]


def list_changed(topic: str, cluster_id: int) -> Item:
    payload: ListChanged = {"cluster": cluster_id}
    return topic, dict(payload)


def object_changed(topic: str, payload: ObjectChanged) -> Item:
    return topic, dict(payload)


def cluster_changed(cluster_id: int, reason: str, *, lists: bool = True) -> None:
    """After commit: the cluster's page (and the clusters list) re-render."""
    items = [object_changed(cluster(cluster_id), {"reason": reason})]
    if lists:
        items.append(list_changed(CLUSTERS, cluster_id))
    publish_many(items)
