"""The compliance REST API under /api/v1/compliance/."""
