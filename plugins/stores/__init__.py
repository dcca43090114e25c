"""Built-in vector stores; the record checks they share in :mod:`.checks`."""
