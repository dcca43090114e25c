"""Plugin loading: built-ins by name, entry points from real dist-info, failure isolation, env switches."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from polyrec.contracts import PluginLoadError, hookimpl
from polyrec.engine.plugins import (
    DEFAULT_PLUGINS,
    PluginLoadWarning,
    build_plugin_manager,
    polyrec_version,
)

GOOD_PLUGIN = """
from polyrec.contracts import hookimpl

CALLS = []

@hookimpl
def register_encoders(register):
    CALLS.append("register_encoders")
"""

BROKEN_PLUGIN = 'raise RuntimeError("this plugin is broken on purpose")\n'


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("POLYREC_STRICT_PLUGINS", "POLYREC_DISABLE_PLUGINS", "POLYREC_NO_ENTRY_POINTS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def good_and_broken(fake_distribution: Callable[..., Path]) -> None:
    """Two installed distributions: one that works and one whose module raises on import."""
    fake_distribution("good-dist", {"good_ep": "pm_good_plugin"}, {"pm_good_plugin": GOOD_PLUGIN}, version="2.5")
    fake_distribution("broken-dist", {"broken_ep": "pm_broken_plugin"}, {"pm_broken_plugin": BROKEN_PLUGIN})


def test_default_plugins_are_loaded_by_name_as_builtins() -> None:
    pm = build_plugin_manager(load_entry_points=False, strict=True)
    assert [name for name, _ in pm.list_name_plugin()] == list(DEFAULT_PLUGINS)
    for name in DEFAULT_PLUGINS:
        assert pm.origins[name].distribution == "polyrec"
        assert pm.origins[name].version == polyrec_version()
    assert pm.failures == []


def test_builtins_argument_replaces_the_default_list(fake_distribution: Callable[..., Path]) -> None:
    fake_distribution("holder", {}, {"pm_builtin_like": GOOD_PLUGIN})
    pm = build_plugin_manager(builtins=["pm_builtin_like"], load_entry_points=False)
    assert [name for name, _ in pm.list_name_plugin()] == ["pm_builtin_like"]
    assert pm.origins["pm_builtin_like"].distribution == "polyrec"


def test_broken_builtin_is_skipped_with_a_warning(fake_distribution: Callable[..., Path]) -> None:
    fake_distribution("holder", {}, {"pm_builtin_ok": GOOD_PLUGIN, "pm_builtin_broken": BROKEN_PLUGIN})
    with pytest.warns(PluginLoadWarning, match="plugin 'pm_builtin_broken' from distribution 'polyrec' failed"):
        pm = build_plugin_manager(builtins=["pm_builtin_broken", "pm_builtin_ok"], load_entry_points=False)
    assert pm.has_plugin("pm_builtin_ok")
    assert not pm.has_plugin("pm_builtin_broken")
    assert [failure.name for failure in pm.failures] == ["pm_builtin_broken"]


def test_in_process_plugins_are_registered_with_their_origin() -> None:
    class InProcess:
        @hookimpl
        def register_scorers(self, register: Callable[[type], None]) -> None:
            pass

    pm = build_plugin_manager(builtins=(), extra=[("mine", InProcess())], load_entry_points=False)
    assert pm.has_plugin("mine")
    assert pm.origins["mine"].distribution == "(in-process)"


def test_entry_point_is_loaded_with_its_distribution_and_version(fake_distribution: Callable[..., Path]) -> None:
    fake_distribution("good-dist", {"good_ep": "pm_good_plugin"}, {"pm_good_plugin": GOOD_PLUGIN}, version="2.5")
    pm = build_plugin_manager(builtins=())
    assert pm.has_plugin("good_ep")
    origin = pm.origins["good_ep"]
    assert (origin.distribution, origin.version) == ("good-dist", "2.5")
    pm.hook.register_encoders(register=lambda component: None)
    assert pm.get_plugin("good_ep").CALLS == ["register_encoders"]


@pytest.mark.usefixtures("good_and_broken")
def test_broken_entry_point_is_skipped_with_a_warning_naming_its_distribution() -> None:
    with pytest.warns(PluginLoadWarning) as caught:
        pm = build_plugin_manager(builtins=())
    messages = [str(w.message) for w in caught if w.category is PluginLoadWarning]
    assert messages == [
        "plugin 'broken_ep' from distribution 'broken-dist' failed to load: "
        "RuntimeError: this plugin is broken on purpose; skipped (set POLYREC_STRICT_PLUGINS=1 to fail instead)"
    ]
    assert pm.has_plugin("good_ep")
    assert not pm.has_plugin("broken_ep")
    [failure] = pm.failures
    assert (failure.name, failure.distribution) == ("broken_ep", "broken-dist")
    assert isinstance(failure.cause, RuntimeError)


@pytest.mark.usefixtures("good_and_broken")
def test_strict_env_reraises_the_load_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYREC_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match="plugin 'broken_ep' from distribution 'broken-dist' failed") as caught:
        build_plugin_manager(builtins=())
    assert isinstance(caught.value.__cause__, RuntimeError)


@pytest.mark.usefixtures("good_and_broken")
def test_strict_argument_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYREC_STRICT_PLUGINS", "1")
    with pytest.warns(PluginLoadWarning):
        pm = build_plugin_manager(builtins=(), strict=False)
    assert [failure.name for failure in pm.failures] == ["broken_ep"]


@pytest.mark.usefixtures("good_and_broken")
@pytest.mark.parametrize("disabled", ["broken_ep", "broken-dist", "unrelated, broken_ep ,other"])
def test_disable_env_skips_by_entry_point_or_distribution_name(monkeypatch: pytest.MonkeyPatch, disabled: str) -> None:
    monkeypatch.setenv("POLYREC_DISABLE_PLUGINS", disabled)
    monkeypatch.setenv("POLYREC_STRICT_PLUGINS", "1")  # the broken plugin must not even be imported
    pm = build_plugin_manager(builtins=())
    assert pm.has_plugin("good_ep")
    assert not pm.has_plugin("broken_ep")
    assert pm.failures == []


def test_disable_env_skips_builtins_by_module_path_or_short_name(
    monkeypatch: pytest.MonkeyPatch, fake_distribution: Callable[..., Path]
) -> None:
    fake_distribution("holder", {}, {"pm_first": GOOD_PLUGIN, "pm_second": GOOD_PLUGIN, "pm_third": GOOD_PLUGIN})
    monkeypatch.setenv("POLYREC_DISABLE_PLUGINS", "pm_first,pm_third")
    pm = build_plugin_manager(builtins=["pm_first", "pm_second", "pm_third"], load_entry_points=False)
    assert [name for name, _ in pm.list_name_plugin()] == ["pm_second"]


@pytest.mark.usefixtures("good_and_broken")
def test_no_entry_points_env_turns_entry_point_loading_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYREC_NO_ENTRY_POINTS", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the broken plugin is not even imported
        pm = build_plugin_manager(builtins=())
    assert pm.list_name_plugin() == []
    with pytest.warns(PluginLoadWarning):
        assert build_plugin_manager(builtins=(), load_entry_points=True).has_plugin("good_ep")


def test_entry_point_name_taken_by_another_distribution_is_reported(
    fake_distribution: Callable[..., Path],
) -> None:
    fake_distribution("first-dist", {"same_name": "pm_first_plugin"}, {"pm_first_plugin": GOOD_PLUGIN})
    fake_distribution("second-dist", {"same_name": "pm_second_plugin"}, {"pm_second_plugin": GOOD_PLUGIN})
    with pytest.warns(PluginLoadWarning, match="already taken by distribution"):
        pm = build_plugin_manager(builtins=())
    [failure] = pm.failures
    assert failure.name == "same_name"
    loaded_from = pm.origins["same_name"].distribution
    assert {loaded_from, failure.distribution} == {"first-dist", "second-dist"}
    assert f"already taken by distribution {loaded_from!r}" in str(failure)


def test_each_call_builds_a_fresh_manager(fake_distribution: Callable[..., Path]) -> None:
    fake_distribution("holder", {}, {"pm_fresh": GOOD_PLUGIN})
    first = build_plugin_manager(builtins=["pm_fresh"], load_entry_points=False)
    second = build_plugin_manager(builtins=(), load_entry_points=False)
    assert first is not second
    assert first.has_plugin("pm_fresh") and not second.has_plugin("pm_fresh")


def test_legacy_builtin_names_still_disable_and_import() -> None:
    """Module names from before plugins/ was grouped by kind keep working for one release."""
    pm = build_plugin_manager(load_entry_points=False, disabled=["store_lancedb", "polyrec.plugins.scorer_mlp"])
    assert "polyrec.plugins.stores.lancedb" not in pm.origins
    assert "polyrec.plugins.scorers.mlp" not in pm.origins
    assert "polyrec.plugins.stores.memory" in pm.origins
    with pytest.warns(DeprecationWarning, match="moved to polyrec.plugins.fusions.concat"):
        from polyrec.plugins import fusion_concat
    from polyrec.plugins.fusions.concat import WeightedConcatFusion

    assert fusion_concat.WeightedConcatFusion is WeightedConcatFusion
    assert WeightedConcatFusion.__module__ == "polyrec.plugins.fusions.concat"
