"""Built-in scorers, one module (or package) each; shared helpers in :mod:`.base`."""
