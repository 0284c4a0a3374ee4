"""Portal URLs of notifications, under /notifications/."""

from __future__ import annotations

from django.urls import path

from apps.notifications import views

app_name = "notifications"
urlpatterns = [
    path("", views.event_log, name="events"),
    path("table/", views.events_table, name="events-table"),
    path("events/<int:pk>/", views.event_detail, name="event"),
    path("events/<int:pk>/messages/", views.event_messages, name="event-messages"),
    path("deliveries/", views.delivery_list, name="deliveries"),
    path("deliveries/table/", views.deliveries_table, name="deliveries-table"),
    path("deliveries/<int:pk>/retry/", views.delivery_retry, name="delivery-retry"),
    path("channels/", views.channel_list, name="channels"),
    path("channels/new/", views.channel_new, name="channel-new"),
    path("channels/<int:pk>/", views.channel_detail, name="channel"),
    path("channels/<int:pk>/test/", views.channel_test, name="channel-test"),
    path("channels/<int:pk>/delete/", views.channel_delete, name="channel-delete"),
    path("rules/", views.rule_list, name="rules"),
    path("rules/<int:pk>/", views.rule_detail, name="rule"),
    path("rules/<int:pk>/delete/", views.rule_delete, name="rule-delete"),
    path("subscriptions/", views.subscription_list, name="subscriptions"),
    path("subscriptions/<int:pk>/", views.subscription_detail, name="subscription"),
    path("subscriptions/<int:pk>/delete/", views.subscription_delete, name="subscription-delete"),
]
