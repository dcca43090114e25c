"""Shared fixtures. Keep this small: most fixtures belong in the test module that uses them."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from s3_fixtures import s3_endpoint  # noqa: F401  (one moto server per session, for every S3 test)


@pytest.fixture
def fake_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """Factory writing a real installed distribution: ``*.dist-info`` (METADATA and
    ``entry_points.txt``) plus module files, in a fresh directory put on ``sys.path``.

    ``make(name, entry_points={ep_name: "module"}, modules={"module": "source"})`` returns
    the directory (pass it as PYTHONPATH to a subprocess with ``on_sys_path=False``). The
    modules are removed from ``sys.modules`` afterwards so tests do not leak into each other.
    """
    created: list[str] = []

    def make(
        name: str,
        entry_points: dict[str, str],
        modules: dict[str, str],
        version: str = "1.0",
        group: str = "polyrec",
        on_sys_path: bool = True,
    ) -> Path:
        root = tmp_path / f"site-{name}"
        dist_info = root / f"{name.replace('-', '_')}-{version}.dist-info"
        dist_info.mkdir(parents=True)
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines = [f"[{group}]"] + [f"{ep_name} = {target}" for ep_name, target in entry_points.items()]
        (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for module, source in modules.items():
            (root / f"{module}.py").write_text(source)
            created.append(module)
        if on_sys_path:
            monkeypatch.syspath_prepend(str(root))
        return root

    yield make
    for module in created:
        sys.modules.pop(module, None)


_MEASURED = pytest.StashKey[list[str]]()


@pytest.fixture
def measured(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``measured(line)``: a figure the test measured (a fit time), printed in the run's summary
    whether or not output is captured."""
    lines = request.config.stash.setdefault(_MEASURED, [])
    return lambda line: lines.append(f"{request.node.nodeid}: {line}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    lines = config.stash.get(_MEASURED, [])
    if lines:
        terminalreporter.section("measured")
        for line in lines:
            terminalreporter.write_line(line)
