"""The permissions check every full sync repeats: the credentials' RBAC can change after registration (a
ClusterRole edited or removed), so ICC asks again with SelfSubjectAccessReview and records what it lacks; a change is
audited, shown on the cluster's page and announced (:mod:`apps.clusters.notify`)."""

from __future__ import annotations

import logging

from django.db import transaction

from apps.clusters import events, notify
from apps.clusters import gateway as gateways
from apps.clusters.models import Cluster

logger = logging.getLogger(__name__)


def recheck_permissions(cluster_id: int, gateway: gateways.Gateway) -> list[str] | None:
    """Ask the cluster which permissions ICC lacks and record a change (None when the check itself failed: the
    sync reports that cluster's health)."""
    from apps.audit.services import audit_record
    from apps.clusters.services.connection import missing_permissions

    try:
        missing = missing_permissions(gateway)
    except gateways.KubeError as exc:
        logger.info("permission check of cluster %s failed: %s", cluster_id, exc.message)
        return None
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().filter(pk=cluster_id).first()
        if cluster is None:
            return None
        before = list(cluster.missing_permissions or [])
        if before == missing:
            return missing
        Cluster.objects.filter(pk=cluster_id).update(missing_permissions=missing)
        audit_record(
            action="clusters.cluster.permissions",
            target=cluster,
            message=("lacks: " + "; ".join(missing)) if missing else "every permission present",
            changes={"missing_permissions": [before, missing]},
            scope={"cluster": str(cluster.pk)},
        )
        notify.permissions_checked(cluster, before=before, after=missing)
        events.cluster_changed(cluster.pk, "permissions")
    return missing
