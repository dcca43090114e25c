"""Built-in plugins, grouped by kind. Each plugin module is loaded by name like an entry point."""

from polyrec.plugins import _legacy

_legacy.install()  # old flat module paths stay importable for one release (see _legacy)
