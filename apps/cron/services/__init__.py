"""The cron app's writes: jobs (``jobs``), runs (``runs``), declared job sets (``declared``)."""
