"""Shapes of the traffic API's answers (read only: they describe computed summaries, not rows)."""

from __future__ import annotations

from rest_framework import serializers


class TrafficApplicationSerializer(serializers.Serializer):
    application = serializers.IntegerField()
    cluster = serializers.CharField()
    namespace = serializers.CharField()
    name = serializers.CharField()
    requests = serializers.IntegerField()
    errors = serializers.IntegerField(help_text="5xx answers or spans with status ERROR")  # type: ignore[assignment]  # a field, not the serializer attribute of that name
    bytes = serializers.IntegerField()
    rate = serializers.FloatField(help_text="requests per second over the range")
    error_rate = serializers.FloatField(allow_null=True, help_text="errors among requests, 0 to 1")
    p50 = serializers.FloatField(allow_null=True, help_text="milliseconds, from merged sketches")
    p95 = serializers.FloatField(allow_null=True)
    p99 = serializers.FloatField(allow_null=True)
    series = serializers.ListField(child=serializers.FloatField(), help_text="requests per second per bucket")


class TrafficApplicationPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = TrafficApplicationSerializer(many=True)


class TrafficRouteSerializer(serializers.Serializer):
    application = serializers.IntegerField()
    route = serializers.CharField(help_text="the route template, never a raw path")
    method = serializers.CharField()
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()  # type: ignore[assignment]  # a field, not the serializer attribute of that name
    bytes = serializers.IntegerField()
    rate = serializers.FloatField()
    error_rate = serializers.FloatField(allow_null=True)
    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)
    p99 = serializers.FloatField(allow_null=True)


class TrafficRoutePageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = TrafficRouteSerializer(many=True)


class TrafficSeriesPointSerializer(serializers.Serializer):
    at = serializers.DateTimeField(help_text="the bucket's start")
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()  # type: ignore[assignment]  # a field, not the serializer attribute of that name
    rate = serializers.FloatField()
    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)
    p99 = serializers.FloatField(allow_null=True)


class TrafficSeriesSerializer(serializers.Serializer):
    level = serializers.CharField(help_text="m (minutes), h (hours) or d (days)")
    points = TrafficSeriesPointSerializer(many=True)


class TrafficNodeSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="app:<id>, db:<system>, peer:<name>, unknown, or other:<n> (unreadable)")
    kind = serializers.CharField(help_text="app, db, peer or unknown")
    label = serializers.CharField()  # type: ignore[assignment]  # a field, not the serializer attribute of that name
    application = serializers.IntegerField(allow_null=True)
    cluster = serializers.CharField()
    namespace = serializers.CharField()


class TrafficEdgeSerializer(serializers.Serializer):
    source = serializers.CharField()  # type: ignore[assignment]  # a field, not the serializer attribute of that name
    target = serializers.CharField()
    calls = serializers.IntegerField()
    errors = serializers.IntegerField()  # type: ignore[assignment]  # a field, not the serializer attribute of that name
    unpaired = serializers.IntegerField(help_text="calls whose other side never arrived")
    rate = serializers.FloatField()
    error_rate = serializers.FloatField(allow_null=True)
    client_p50 = serializers.FloatField(allow_null=True, help_text="as the caller saw it (ms)")
    client_p95 = serializers.FloatField(allow_null=True)
    server_p50 = serializers.FloatField(allow_null=True, help_text="as the callee saw it (ms)")
    server_p95 = serializers.FloatField(allow_null=True)
    change = serializers.CharField(required=False, help_text='diff mode: new, removed, slower or ""')
    before_p95 = serializers.FloatField(required=False, allow_null=True, help_text="diff mode: the p95 before")


class TrafficGraphSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    before_since = serializers.DateTimeField(required=False, help_text="diff mode: the older version's period")
    before_until = serializers.DateTimeField(required=False)
    nodes = TrafficNodeSerializer(many=True)
    edges = TrafficEdgeSerializer(many=True)
