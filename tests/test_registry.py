"""The plugin registry: entry points, autoload switch, duplicates, inline plugins."""

from __future__ import annotations

import sys
import textwrap

import pytest

from benchmark.errors import UserError
from benchmark.hookspecs import hookimpl
from benchmark.registry import AUTOLOAD_ENV, MethodSpec, build_registry, get_plugin_manager

GOOD_PLUGIN = """
from benchmark.hookspecs import hookimpl
from benchmark.registry import MethodSpec

@hookimpl
def register_methods(register):
    register(MethodSpec("fake_method", "a method from a fake distribution",
                        "vlprompt_methods.zeroshot:METHOD"))
"""


def install_fake(folder, module: str, source: str, distribution: str, entry: str) -> None:
    """A third-party distribution in ``folder``: a module and a .dist-info naming it as an
    entry point of the suite's group, found by importlib.metadata as pip would leave it."""
    (folder / f"{module}.py").write_text(textwrap.dedent(source))
    info = folder / f"{module}-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[vlprompt_bench]\n{entry} = {module}\n")


@pytest.fixture
def fake_distribution(tmp_path, monkeypatch):
    """A third-party distribution on sys.path: a .dist-info with an entry point, no pip."""
    install_fake(tmp_path, "fake_bench_plugin", GOOD_PLUGIN, "fake-bench-plugin", "fake")
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


# -- a broken third-party plugin is reported once and skipped ---------------------------------

BROKEN = {
    "raises at import": (
        'raise RuntimeError("no GPU driver found")',
        "RuntimeError: no GPU driver",
    ),
    "exits at import": ("raise SystemExit(0)", "SystemExit: 0"),
    "BaseException at import": (
        "class Stop(BaseException):\n    pass\nraise Stop('halt')",
        "Stop: halt",
    ),
    "hook raises": (
        """
        from benchmark.hookspecs import hookimpl
        from benchmark.registry import MethodSpec

        @hookimpl
        def register_methods(register):
            register(MethodSpec("broken_method", "half registered", "vlprompt_methods.coop:METHOD"))
            raise KeyError("config.yaml")
        """,
        "register_methods raised KeyError",
    ),
    "hook exits": (
        """
        from benchmark.hookspecs import hookimpl

        @hookimpl
        def register_protocols(register):
            raise SystemExit(0)
        """,
        "register_protocols raised SystemExit",
    ),
    "spec without attributes": (
        """
        from benchmark.hookspecs import hookimpl

        class Spec:
            name = "broken_method"

        @hookimpl
        def register_methods(register):
            register(Spec())
        """,
        "registered method 'broken_method' that is not a MethodSpec",
    ),
    "protocol without plan": (
        """
        from benchmark.hookspecs import hookimpl

        class HalfProtocol:
            name, summary, default_shots = "half", "no plan", (1,)

        @hookimpl
        def register_protocols(register):
            register(HalfProtocol())
        """,
        "registered protocol 'half' without training_datasets, plan, derived",
    ),
    "misspelt hook": (
        """
        from benchmark.hookspecs import hookimpl

        @hookimpl
        def register_method(register):
            pass
        """,
        "unknown hook 'register_method'",
    ),
    "wrong hook arguments": (
        """
        from benchmark.hookspecs import hookimpl

        @hookimpl
        def register_methods(registry):
            pass
        """,
        "register_methods",
    ),
    "target module missing": (
        """
        from benchmark.hookspecs import hookimpl
        from benchmark.registry import MethodSpec

        @hookimpl
        def register_methods(register):
            register(MethodSpec("broken_method", "nowhere", "no_such_module_here:METHOD"))
        """,
        "no_such_module_here",
    ),
    "variants not a mapping": (
        """
        from benchmark.hookspecs import hookimpl
        from benchmark.registry import MethodSpec

        @hookimpl
        def register_methods(register):
            register(MethodSpec("broken_method", "old API", "vlprompt_methods.coop:METHOD", ("a",)))
        """,
        "whose variants are not a mapping of names to Variant",
    ),
    "duplicate of a built-in": (
        """
        from benchmark.hookspecs import hookimpl
        from benchmark.registry import MethodSpec

        @hookimpl
        def register_methods(register):
            register(MethodSpec("coop", "a second coop", "vlprompt_methods.coop:METHOD"))
        """,
        "method 'coop' is registered twice",
    ),
}


@pytest.fixture
def broken_distribution(request, tmp_path, monkeypatch):
    """A broken third-party plugin next to a working one."""
    source, _ = BROKEN[request.param]
    install_fake(tmp_path, "broken_bench_plugin", source, "broken-bench-plugin", "broken")
    install_fake(tmp_path, "fake_bench_plugin", GOOD_PLUGIN, "fake-bench-plugin", "fake")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield request.param
    sys.modules.pop("broken_bench_plugin", None)
    sys.modules.pop("fake_bench_plugin", None)


@pytest.mark.parametrize("broken_distribution", list(BROKEN), indirect=True)
def test_a_broken_plugin_is_reported_once_and_skipped(broken_distribution, capsys):
    from benchmark.cli import main

    _, reason = BROKEN[broken_distribution]
    assert main(["list", "methods"]) == 0
    out, err = capsys.readouterr()
    assert "coop" in out and "zeroshot" in out and "fake_method" in out  # the others work
    assert "broken_method" not in out
    warnings = [line for line in err.splitlines() if "broken" in line]
    assert len(warnings) == 1, err
    assert warnings[0].startswith("warning: plugin 'broken' (broken-bench-plugin 0.3)")
    assert "was skipped" in warnings[0] and reason in warnings[0], warnings[0]
    assert "Traceback" not in err
    registry = build_registry()
    assert "fake_method" in registry.methods and "broken_method" not in registry.methods
    assert registry.methods.provider("coop").distribution == "vlprompt-bench"
    assert main(["--no-plugin-autoload", "list", "methods"]) == 0  # the escape hatch
    assert "broken" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "broken_distribution", ["hook raises", "target module missing"], indirect=True
)
def test_selecting_a_broken_plugins_method_is_one_line(broken_distribution, capsys, tmp_path):
    from benchmark.cli import main

    capsys.readouterr()
    code = main(["run", "--methods", "broken_method", "--results", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 4, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors == [err.strip().splitlines()[-1]]
    assert "method 'broken_method' comes from plugin 'broken' (broken-bench-plugin 0.3)" in err
    assert "which is broken and was skipped" in err and "Traceback" not in err


@pytest.mark.parametrize("broken_distribution", ["raises at import"], indirect=True)
def test_an_unknown_name_mentions_the_skipped_plugins(broken_distribution):
    registry = build_registry()
    with pytest.raises(UserError, match="broken plugins were skipped: 'broken'"):
        registry.methods.get("nowhere_method")


class _LateImportFailure:
    @hookimpl
    def register_methods(self, register):
        register(MethodSpec("late", "no such attribute", "vlprompt_methods.coop:NO_METHOD"))


class _NotAMethod:
    @hookimpl
    def register_methods(self, register):
        register(MethodSpec("not_a_method", "lacks train", "benchmark.errors:EXIT_OK"))


@pytest.mark.parametrize(
    ("plugin", "name", "fragment"),
    [
        (_LateImportFailure(), "late", "AttributeError: module 'vlprompt_methods.coop' has no"),
        (_NotAMethod(), "not_a_method", "lacks name, version, Config, config, train"),
    ],
)
def test_a_method_that_cannot_be_loaded_is_one_line(plugin, name, fragment):
    registry = build_registry(autoload=False, extra_plugins=[plugin])
    with pytest.raises(UserError) as error:
        registry.load_method(name)
    assert error.value.exit_code == 4 and fragment in str(error.value)
    assert str(error.value).startswith(f"method {name!r}: ")
    provider = type(plugin).__name__
    assert str(error.value).endswith(f"(registered by {provider} (inline unversioned))")
