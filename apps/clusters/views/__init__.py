"""Portal pages of clusters and applications: lists, details, registration, edits and actions — all live.

Views are thin: selectors read (restricted to the viewer), services write (audited), forms check shapes.
Hidden objects answer 404; visible objects the viewer may not act on answer 403 (recorded as denied).
Lists with filters stay live through a small trigger element pushed over the websocket, which makes the
page re-fetch its table with its own filters (see :mod:`apps.clusters.topics`).

``clusters`` holds the clusters pages, ``applications`` the applications pages and their workload actions,
``pod_logs`` a pod's logs, ``pod_delete`` deleting a pod, ``kubeconfig_stash`` the kubeconfig kept between
attempts, ``common`` paging; the views ``apps.clusters.urls`` names are importable from here.
"""

from __future__ import annotations

from apps.clusters.views.applications import (
    application_detail,
    application_list,
    application_table,
    workload_restart,
    workload_scale,
)
from apps.clusters.views.clusters import (
    cluster_delete,
    cluster_detail,
    cluster_edit,
    cluster_list,
    cluster_pause,
    cluster_register,
    cluster_resume,
    cluster_sync,
    cluster_table,
    cluster_workloads_fragment,
    kubeconfig_contexts_fragment,
)
from apps.clusters.views.pod_delete import pod_delete
from apps.clusters.views.pod_logs import pod_logs

__all__ = [
    "application_detail",
    "application_list",
    "application_table",
    "cluster_delete",
    "cluster_detail",
    "cluster_edit",
    "cluster_list",
    "cluster_pause",
    "cluster_register",
    "cluster_resume",
    "cluster_sync",
    "cluster_table",
    "cluster_workloads_fragment",
    "kubeconfig_contexts_fragment",
    "pod_delete",
    "pod_logs",
    "workload_restart",
    "workload_scale",
]
