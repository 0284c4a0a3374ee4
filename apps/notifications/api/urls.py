"""API URLs of notifications, under /api/v1/notifications/."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from apps.notifications.api.views import ChannelViewSet, DeliveryViewSet, EventViewSet, RuleViewSet, SubscriptionViewSet

router = SimpleRouter()
router.register("channels", ChannelViewSet, basename="notifications-channel")
router.register("rules", RuleViewSet, basename="notifications-rule")
router.register("subscriptions", SubscriptionViewSet, basename="notifications-subscription")
router.register("events", EventViewSet, basename="notifications-event")
router.register("deliveries", DeliveryViewSet, basename="notifications-delivery")
urlpatterns = router.urls
