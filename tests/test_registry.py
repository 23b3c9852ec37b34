"""The plugin registry: entry points, autoload switch, duplicates, inline plugins."""

from __future__ import annotations

import sys
import textwrap

import pytest

from benchmark.errors import UserError
from benchmark.hookspecs import hookimpl
from benchmark.registry import AUTOLOAD_ENV, MethodSpec, build_registry, get_plugin_manager


@pytest.fixture
def fake_distribution(tmp_path, monkeypatch):
    """A third-party distribution on sys.path: a .dist-info with an entry point, no pip."""
    package = tmp_path / "fake_bench_plugin.py"
    package.write_text(
        textwrap.dedent(
            """
            from benchmark.hookspecs import hookimpl
            from benchmark.registry import MethodSpec

            @hookimpl
            def register_methods(register):
                register(MethodSpec("fake_method", "a method from a fake distribution",
                                    "vlprompt_methods.zeroshot:METHOD"))
            """
        )
    )
    info = tmp_path / "fake_bench_plugin-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-bench-plugin\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[vlprompt_bench]\nfake = fake_bench_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("fake_bench_plugin", None)


def test_builtins_are_plugins_found_through_entry_points():
    registry = build_registry(autoload=False)
    assert {"zeroshot", "coop"} <= set(registry.methods)
    assert {"few_shot", "base_to_new", "cross_dataset", "domain_generalization"} <= set(
        registry.protocols
    )
    assert registry.methods.provider("coop").distribution == "vlprompt-bench"


def test_entry_point_plugin_of_a_fake_distribution_is_discovered(fake_distribution):
    registry = build_registry()
    assert "fake_method" in registry.methods
    provider = registry.methods.provider("fake_method")
    assert (provider.distribution, provider.version) == ("fake-bench-plugin", "0.3")


def test_autoload_switch_keeps_third_party_plugins_out(fake_distribution, monkeypatch):
    assert "fake_method" not in build_registry(autoload=False).methods
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    assert "fake_method" not in build_registry().methods


class _Duplicate:
    @hookimpl
    def register_methods(self, register):
        register(MethodSpec("coop", "a second coop", "vlprompt_methods.coop:METHOD"))


def test_duplicate_name_names_both_providers():
    with pytest.raises(UserError) as error:
        build_registry(autoload=False, extra_plugins=[_Duplicate()])
    message = str(error.value)
    assert "method 'coop' is registered twice" in message
    assert "vlprompt-bench" in message and "inline" in message


class _Misspelled:
    @hookimpl
    def register_method(self, register):  # the hook is register_methods
        pass


def test_misspelled_hook_fails_loudly():
    from pluggy import PluginValidationError

    with pytest.raises(PluginValidationError):
        get_plugin_manager(autoload=False, extra_plugins=[_Misspelled()])


def test_plugin_manager_is_fresh_per_call():
    assert get_plugin_manager(autoload=False) is not get_plugin_manager(autoload=False)


def test_unknown_name_suggests_the_closest():
    registry = build_registry(autoload=False)
    with pytest.raises(UserError, match="Did you mean 'coop'"):
        registry.methods.get("copo")
    assert registry.methods.select(["zero*"]) == ["zeroshot"]
    assert "coop" in registry.methods.select(["co*"])
