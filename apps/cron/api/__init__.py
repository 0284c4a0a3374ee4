"""The cron REST API under /api/v1/cron/."""
