"""Built-in plugins. Each module is an ordinary plugin, loaded by name like an entry point."""
