"""Writes of notifications, one service per action: channels and rules need global ``configure``; a subscription
is its user's own (within what they may read)."""
