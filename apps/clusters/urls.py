"""Portal URLs of the clusters app, under /clusters/ (namespace ``clusters``): clusters and their applications."""

from __future__ import annotations

from django.urls import path

from apps.clusters import views

app_name = "clusters"
urlpatterns = [
    path("", views.cluster_list, name="list"),
    path("table/", views.cluster_table, name="table"),
    path("new/", views.cluster_register, name="register"),
    path("kubeconfig-contexts/", views.kubeconfig_contexts_fragment, name="kubeconfig-contexts"),
    path("<int:pk>/", views.cluster_detail, name="detail"),
    path("<int:pk>/workloads/", views.cluster_workloads_fragment, name="workloads"),
    path("<int:pk>/edit/", views.cluster_edit, name="edit"),
    path("<int:pk>/pause/", views.cluster_pause, name="pause"),
    path("<int:pk>/resume/", views.cluster_resume, name="resume"),
    path("<int:pk>/sync/", views.cluster_sync, name="sync"),
    path("<int:pk>/delete/", views.cluster_delete, name="delete"),
    path("applications/", views.application_list, name="applications"),
    path("applications/table/", views.application_table, name="applications-table"),
    path("applications/<int:pk>/", views.application_detail, name="application"),
    path("applications/<int:pk>/workloads/<int:workload_id>/scale/", views.workload_scale, name="workload-scale"),
    path("applications/<int:pk>/workloads/<int:workload_id>/restart/", views.workload_restart, name="workload-restart"),
    path("applications/<int:pk>/pods/<int:pod_id>/logs/", views.pod_logs, name="pod-logs"),
    path("applications/<int:pk>/pods/<int:pod_id>/delete/", views.pod_delete, name="pod-delete"),
]
