"""The polyrec engine: hooks, plugin manager, registry, config, pipeline, CLI.

Import submodules directly; nothing heavy happens at import time.
"""

__all__: list[str] = []
