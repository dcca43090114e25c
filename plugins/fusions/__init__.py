"""Built-in fusion strategies, one module each; shared field handling in :mod:`.fields`."""
