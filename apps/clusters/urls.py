"""Portal URLs: ``urlpatterns`` under /clusters/, ``applications_urlpatterns`` under /applications/."""

from __future__ import annotations

from django.urls import path

from apps.clusters import views

urlpatterns = [
    path("", views.cluster_list, name="clusters"),
    path("table/", views.cluster_table, name="clusters-table"),
    path("new/", views.cluster_register, name="cluster-register"),
    path("kubeconfig-contexts/", views.kubeconfig_contexts_fragment, name="cluster-kubeconfig-contexts"),
    path("<int:pk>/", views.cluster_detail, name="cluster-detail"),
    path("<int:pk>/workloads/", views.cluster_workloads_fragment, name="cluster-workloads"),
    path("<int:pk>/edit/", views.cluster_edit, name="cluster-edit"),
    path("<int:pk>/pause/", views.cluster_pause, name="cluster-pause"),
    path("<int:pk>/resume/", views.cluster_resume, name="cluster-resume"),
    path("<int:pk>/sync/", views.cluster_sync, name="cluster-sync"),
    path("<int:pk>/delete/", views.cluster_delete, name="cluster-delete"),
]

applications_urlpatterns = [
    path("", views.application_list, name="applications"),
    path("table/", views.application_table, name="applications-table"),
    path("<int:pk>/", views.application_detail, name="application-detail"),
    path("<int:pk>/workloads/<int:workload_id>/scale/", views.workload_scale, name="workload-scale"),
    path("<int:pk>/workloads/<int:workload_id>/restart/", views.workload_restart, name="workload-restart"),
    path("<int:pk>/pods/<int:pod_id>/logs/", views.pod_logs, name="pod-logs"),
]
