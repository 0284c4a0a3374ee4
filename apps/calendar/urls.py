"""Portal URLs of the change calendar, under /calendar/ (namespace ``calendar``)."""

from __future__ import annotations

from django.urls import path

from apps.calendar import views

app_name = "calendar"
urlpatterns = [
    path("", views.calendar_page, name="calendar"),
    path("new/", views.entry_new, name="entry-new"),
    path("preview/", views.preview, name="preview"),
    path("<int:pk>/", views.entry_detail, name="entry"),
    path("<int:pk>/delete/", views.entry_delete, name="delete"),
]
