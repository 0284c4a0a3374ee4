"""Anchor programs the benches compare ICC with (not benches themselves: they have no --quick mode of their own;
the bench that starts them does)."""
