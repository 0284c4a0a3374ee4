"""Writes of the compliance app, one module per entity: exceptions, policies and bindings, fixes."""
