"""Endpoints and pages of traffic."""
