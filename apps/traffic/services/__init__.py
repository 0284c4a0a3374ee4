"""Writes of traffic: one keyword-only function per change, checking rights, audited (see recommendations)."""
