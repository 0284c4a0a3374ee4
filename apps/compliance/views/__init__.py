"""Portal pages of compliance, one module per area."""
