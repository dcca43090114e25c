"""``import lancedb`` without building the REST client of Lance namespaces that it never uses here.

lancedb imports ``lance_namespace``, which imports the models of the generated REST client
``lance_namespace_urllib3_client``; that package's ``__init__`` also imports every generated
API module, whose hundreds of pydantic ``validate_call`` schemas are built at import: about
2.4 s of the 3.4 s ``import lancedb`` takes on a quiet 2-core machine. A local or object-storage
store needs only the models. So the package is registered without running its ``__init__``;
its submodules (``.models``, ``.api``) import as usual, and the first use of a name the
``__init__`` defines (``ApiClient``, ``TableApi``, ...) runs the real ``__init__`` then.

On Python before 3.12 lancedb marks its methods with the ``overrides`` package's ``@override``,
which disassembles the calling frame's bytecode to check each one against its base classes:
about 0.4 s of the import on a quiet 2-core machine (2 s under a profiler). From 3.12 on,
lancedb uses ``typing.override`` (it only sets ``__override__``) and an empty
``EnforceOverrides``; :func:`import_lancedb` gives it those on 3.11 too, for the import only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import threading
from collections.abc import Iterator
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


@contextlib.contextmanager
def _overrides_as_on_python_3_12() -> Iterator[None]:
    """``overrides.override`` / ``EnforceOverrides`` as lancedb has them on 3.12+, inside the block."""
    if sys.version_info >= (3, 12) or "lancedb" in sys.modules:
        yield
        return
    try:
        import overrides
        from typing_extensions import override
    except ImportError:
        yield
        return

    class EnforceOverrides:  # typing has no such check: lancedb's own stand-in on 3.12+
        pass

    saved = overrides.override, overrides.EnforceOverrides
    overrides.override, overrides.EnforceOverrides = override, EnforceOverrides  # type: ignore[assignment]
    try:
        yield
    finally:
        overrides.override, overrides.EnforceOverrides = saved  # type: ignore[misc]


def import_lancedb() -> ModuleType:
    defer_package_init(REST_CLIENT)
    with _overrides_as_on_python_3_12():
        import lancedb

    return lancedb
