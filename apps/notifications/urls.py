"""Portal URLs of notifications, under /notifications/."""

from __future__ import annotations

from django.urls import path

from apps.notifications import views

app_name = "notifications"
urlpatterns = [
    path("", views.event_log, name="events"),
    path("channels/", views.channel_list, name="channels"),
    path("channels/<int:pk>/test/", views.channel_test, name="channel-test"),
    path("channels/<int:pk>/delete/", views.channel_delete, name="channel-delete"),
    path("rules/", views.rule_list, name="rules"),
    path("rules/<int:pk>/delete/", views.rule_delete, name="rule-delete"),
    path("subscriptions/", views.subscription_list, name="subscriptions"),
    path("subscriptions/<int:pk>/delete/", views.subscription_delete, name="subscription-delete"),
]
