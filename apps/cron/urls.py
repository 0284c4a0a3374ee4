"""Portal URLs of cron, under /cron/ (namespace ``cron``)."""

from __future__ import annotations

from django.urls import path

from apps.cron import views

app_name = "cron"
urlpatterns = [
    path("", views.job_list, name="jobs"),
    path("table/", views.job_table, name="jobs-table"),
    path("new/", views.job_new, name="job-new"),
    path("preview/", views.preview, name="preview"),
    path("system/", views.system_jobs, name="system"),
    path("<int:pk>/", views.job_detail, name="job"),
    path("<int:pk>/runs/", views.runs_fragment, name="runs"),
    path("<int:pk>/runs/<int:run_id>/", views.run_detail, name="run"),
    path("<int:pk>/runs/<int:run_id>/cancel/", views.run_cancel, name="run-cancel"),
    path("<int:pk>/run/", views.job_run_now, name="run-now"),
    path("<int:pk>/suspend/", views.job_suspend, name="suspend"),
    path("<int:pk>/resume/", views.job_resume, name="resume"),
    path("<int:pk>/delete/", views.job_delete, name="delete"),
    path("<int:pk>/rotate-secret/", views.job_rotate_secret, name="rotate-secret"),
]
