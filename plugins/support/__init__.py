"""Helpers shared by plugins of several kinds: torch runtime and training, trained-state files, vectors."""
