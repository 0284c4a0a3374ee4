from __future__ import annotations

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "apps.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from apps.core.access import ScopedModel, register_scoped
        from apps.core.domain_events import sink_register
        from apps.core.registry import nav_register
        from apps.notifications import models as m
        from apps.notifications import routing, topics

        scoped = ScopedModel(cluster="scope_cluster", namespace="scope_namespace", application="scope_application")
        register_scoped(m.Event, scoped)  # an event is read where its scope is
        register_scoped(m.Message, scoped)
        register_scoped(
            m.Delivery,
            ScopedModel(
                cluster="message__scope_cluster",
                namespace="message__scope_namespace",
                application="message__scope_application",
            ),
        )
        # Channels and rules: global configuration (read and changed with global grants only).
        register_scoped(m.Channel, ScopedModel())
        register_scoped(m.Rule, ScopedModel())
        register_scoped(m.Subscription, ScopedModel(visible_to_self="user_id"))
        sink_register("notifications", routing.sink)
        topics.register()  # the live event and delivery logs (a sink after the one above, a task hook)
        from apps.notifications import dashboard

        dashboard.register()  # open conditions by severity
        nav_register("notifications", "Notifications", "/notifications/", order=65)
