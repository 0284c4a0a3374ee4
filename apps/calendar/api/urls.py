"""API URLs of the change calendar, under /api/v1/calendar/."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.calendar.api.views import CalendarEntryViewSet, CalendarOccurrencesView, CalendarStatusView

router = SimpleRouter()
router.register("entries", CalendarEntryViewSet, basename="calendar-entry")
urlpatterns = [
    *router.urls,
    path("occurrences/", CalendarOccurrencesView.as_view(), name="calendar-occurrences"),
    path("status/", CalendarStatusView.as_view(), name="calendar-status"),
]
