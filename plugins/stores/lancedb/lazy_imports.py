"""``import lancedb`` without building the REST client of Lance namespaces that it never uses here.

lancedb imports ``lance_namespace``, which imports the models of the generated REST client
``lance_namespace_urllib3_client``; that package's ``__init__`` also imports every generated
API module, whose hundreds of pydantic ``validate_call`` schemas are built at import: about
2.4 s of the 3.4 s ``import lancedb`` takes on a quiet 2-core machine. A local or object-storage
store needs only the models. So the package is registered without running its ``__init__``;
its submodules (``.models``, ``.api``) import as usual, and the first use of a name the
``__init__`` defines (``ApiClient``, ``TableApi``, ...) runs the real ``__init__`` then.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

__all__ = ["import_lancedb", "defer_package_init"]

REST_CLIENT = "lance_namespace_urllib3_client"
_lock = threading.Lock()


def defer_package_init(name: str) -> None:
    """Register package ``name`` with its ``__init__`` deferred to the first missing attribute."""
    with _lock:
        if name in sys.modules:
            return
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        loader = spec.loader

        def __getattr__(attribute: str) -> Any:
            with _lock:
                if "__getattr__" in module.__dict__:
                    del module.__dict__["__getattr__"]
                    loader.exec_module(module)  # the real __init__, in the registered module
            return module.__dict__[attribute] if attribute in module.__dict__ else _missing(name, attribute)

        module.__getattr__ = __getattr__  # type: ignore[method-assign]  # PEP 562
        sys.modules[name] = module


def _missing(package: str, attribute: str) -> Any:
    raise AttributeError(f"module {package!r} has no attribute {attribute!r}")


def import_lancedb() -> ModuleType:
    defer_package_init(REST_CLIENT)
    import lancedb

    return lancedb
