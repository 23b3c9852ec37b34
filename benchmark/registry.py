"""The plugin manager and the registry of methods, protocols and datasets it fills.

:func:`get_plugin_manager` builds a fresh :class:`pluggy.PluginManager` per call: the
suite's own plugins and third-party plugins are both found through the entry-point group
``vlprompt_bench``; third-party autoloading can be switched off (``--no-plugin-autoload`` or
the environment variable ``VLPROMPT_BENCH_DISABLE_PLUGIN_AUTOLOAD=1``) so that numbers do not
depend on what else happens to be installed. :func:`build_registry` asks every plugin to
register its entries and checks them.

A broken plugin never takes the others down. A plugin found through an entry point that
fails to import (any exception, ``SystemExit`` included), implements a hook the suite does
not have or with other arguments, raises in a registration hook, registers something that
is not a valid method, protocol or dataset (a method whose target module does not exist),
or registers a name another plugin registered first, is reported once on stderr, by name and
distribution, and skipped with everything it registered. Selecting one of its entries is a
one-line error that says so. Plugins passed in ``extra_plugins`` are the caller's own code:
their mistakes are raised.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pluggy

from benchmark import DISTRIBUTION, ENTRY_POINT_GROUP, hookspecs
from benchmark.errors import EXIT_ENVIRONMENT, UserError, first_line, unknown_name

if TYPE_CHECKING:
    from benchmark.datasets.spec import DatasetSpec
    from benchmark.protocol import Protocol

AUTOLOAD_ENV = "VLPROMPT_BENCH_DISABLE_PLUGIN_AUTOLOAD"


@dataclass(frozen=True)
class Provider:
    """Who registered an entry: the plugin's name and, when installed, its distribution."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"{self.plugin} ({self.distribution} {self.version})"


@dataclass(frozen=True)
class Variant:
    """A named variant of a method (selected as ``method:variant``): the config fields it
    sets on top of the method's settings, and its display title (``"CLIP++"``)."""

    changes: Mapping[str, Any]
    title: str = ""


@dataclass(frozen=True)
class MethodSpec:
    """A training method, registered by name; ``target`` is imported only when it runs.

    ``target`` is ``"package.module:attribute"`` naming an object that implements
    :class:`benchmark.method.Method`, or that object itself. ``title`` is the display name of
    leaderboards (``"CoOp"``; default: the name). ``variants`` are the method's named
    variants, declared here only, so that listing them imports nothing.
    """

    name: str
    summary: str
    target: str | Any
    variants: Mapping[str, Variant] = field(default_factory=dict)
    title: str = ""

    def load(self) -> Any:
        """The object implementing :class:`benchmark.method.Method`; a target that cannot be
        imported, or an object without the Method interface, is a one-line error."""
        if isinstance(self.target, str):
            module_name, _, attribute = self.target.partition(":")
            try:
                method = getattr(importlib.import_module(module_name), attribute)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # ImportError, AttributeError, SystemExit, ...
                raise UserError(
                    f"method {self.name!r}: cannot load {self.target!r} ({_described(exc)})",
                    EXIT_ENVIRONMENT,
                ) from exc
        else:
            method = self.target
        lacking = [a for a in METHOD_ATTRIBUTES if not hasattr(method, a)]
        if lacking:
            raise UserError(
                f"method {self.name!r}: {self.target!r} lacks {', '.join(lacking)} of the "
                "Method interface (benchmark.method.Method)",
                EXIT_ENVIRONMENT,
            )
        return method

    def variant(self, name: str) -> Variant:
        """The variant ``name``, or a one-line error naming the valid ones."""
        if name not in self.variants:
            raise unknown_name(f"{self.name} variant", name, self.variants)
        return self.variants[name]

    def titles(self) -> dict[str, str]:
        """Display titles of the method and of each ``name:variant``."""
        own = self.title or self.name
        titles = {self.name: own}
        for key, variant in self.variants.items():
            titles[f"{self.name}:{key}"] = variant.title or f"{own} ({key})"
        return titles


#: What a method object must have (benchmark.method.Method).
METHOD_ATTRIBUTES = ("name", "version", "Config", "config", "train")
#: What a protocol object must have (benchmark.protocol.Protocol).
PROTOCOL_ATTRIBUTES = ("name", "summary", "default_shots", "training_datasets", "plan", "derived")


def _described(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    message = first_line(exc)
    return (
        type(exc).__name__ if message == type(exc).__name__ else f"{type(exc).__name__}: {message}"
    )


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that was skipped, why, and the names it registered before it failed."""

    provider: Provider
    reason: str
    names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __str__(self) -> str:
        p = self.provider
        return f"plugin {p.plugin!r} ({p.distribution} {p.version})"


T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    value: T
    provider: Provider


class Register(Generic[T]):
    """The callable handed to a registration hook: ``register(entry)``.

    Entries are checked here (a method is a :class:`MethodSpec` whose target module exists,
    a protocol has the :class:`~benchmark.protocol.Protocol` attributes, a dataset is a
    :class:`~benchmark.datasets.spec.DatasetSpec`) and kept in ``staged`` until the plugin's
    hooks all returned; a name already in ``table`` or ``staged`` is an error naming both
    providers.
    """

    def __init__(
        self,
        kind: str,
        table: dict[str, Entry[T]],
        provider: Provider,
        staged: dict[str, Entry[T]] | None = None,
    ) -> None:
        self._kind = kind
        self._table = table
        self._provider = provider
        self._staged = staged if staged is not None else table
        self.tried: list[str] = []  # every name registered, valid or not

    def provider_of(self, name: str) -> Provider | None:
        """Who registered ``name`` already (None: the name is free)."""
        for table in (self._table, self._staged):
            if name in table:
                return table[name].provider
        return None

    def __call__(self, value: T) -> None:
        name = getattr(value, "name", None)
        if not isinstance(name, str) or not name:
            raise UserError(f"registered a {self._kind} without a name")
        self.tried.append(name)
        first = self.provider_of(name)
        if first is not None:
            raise UserError(
                f"{self._kind} {name!r} is registered twice: by {first} and by {self._provider}"
            )
        problem = _entry_problem(self._kind, value)
        if problem:
            raise UserError(f"registered {self._kind} {name!r} {problem}")
        self._staged[name] = Entry(value, self._provider)


def _entry_problem(kind: str, value: object) -> str | None:
    """What is wrong with a registered entry, or None."""
    if kind == "method":
        if not isinstance(value, MethodSpec):
            return "that is not a MethodSpec"
        if not isinstance(value.summary, str) or not isinstance(value.title, str):
            return "whose summary or title is not a string"
        if not isinstance(value.variants, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Variant) for k, v in value.variants.items()
        ):
            return "whose variants are not a mapping of names to Variant"
        if isinstance(value.target, str):
            module_name, colon, attribute = value.target.partition(":")
            if not (colon and module_name and attribute):
                return f"with target {value.target!r}; expected 'package.module:attribute'"
            try:
                found = importlib.util.find_spec(module_name)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                return f"whose target module {module_name!r} cannot be found ({_described(exc)})"
            if found is None:
                return f"whose target module {module_name!r} does not exist"
    elif kind == "protocol":
        lacking = [a for a in PROTOCOL_ATTRIBUTES if not hasattr(value, a)]
        if lacking:
            return f"without {', '.join(lacking)}"
    elif kind == "dataset":
        from benchmark.datasets.spec import DatasetSpec

        if not isinstance(value, DatasetSpec):
            return "that is not a DatasetSpec"
    return None


@dataclass
class Table(Generic[T]):
    """Registered entries of one kind, looked up by exact name or by wildcard.

    ``broken`` are the plugins skipped as broken, for the error of a name they registered (or
    might have registered) before failing.
    """

    kind: str
    entries: dict[str, Entry[T]] = field(default_factory=dict)
    broken: tuple[BrokenPlugin, ...] = ()

    def names(self) -> list[str]:
        return sorted(self.entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def get(self, name: str) -> T:
        if name not in self.entries:
            raise self._unknown(name)
        return self.entries[name].value

    def provider(self, name: str) -> Provider:
        self.get(name)
        return self.entries[name].provider

    def select(self, patterns: Iterable[str]) -> list[str]:
        """Names matching each pattern (``coop*`` style), in the order of the patterns."""
        chosen: list[str] = []
        for pattern in patterns:
            matches = [n for n in self.names() if fnmatchcase(n, pattern)]
            if not matches:
                raise self._unknown(pattern)
            chosen.extend(m for m in matches if m not in chosen)
        return chosen

    def _unknown(self, name: str) -> UserError:
        for plugin in self.broken:
            if name in plugin.names.get(self.kind, ()):
                return UserError(
                    f"{self.kind} {name!r} comes from {plugin}, which is broken and was "
                    f"skipped: {plugin.reason}",
                    EXIT_ENVIRONMENT,
                )
        error = unknown_name(self.kind, name, self.entries)
        if self.broken:
            skipped = ", ".join(repr(p.provider.plugin) for p in self.broken)
            error = UserError(f"{error} (broken plugins were skipped: {skipped})", error.exit_code)
        return error


@dataclass
class Registry:
    """Everything the plugins registered, plus the manager for run-time hooks.

    A registry pickles as the recipe that built it (``autoload`` and the extra plugins, which
    must pickle themselves) and is built again where it is unpickled: that is how it reaches
    the worker processes of a distributed run.
    """

    methods: Table[MethodSpec]
    protocols: Table[Protocol]
    datasets: Table[DatasetSpec]
    plugin_manager: pluggy.PluginManager
    autoload: bool = True
    extra_plugins: tuple[object, ...] = ()

    def __reduce__(self):
        return build_registry, (self.autoload, self.extra_plugins)

    def load_method(self, name: str) -> Any:
        """The method object registered as ``name`` (its target imported); one that cannot
        be loaded is a one-line error naming the plugin that registered it."""
        spec = self.methods.get(name)
        try:
            return spec.load()
        except UserError as exc:
            provider = self.methods.provider(name)
            raise UserError(f"{exc} (registered by {provider})", exc.exit_code) from exc

    def method_titles(self) -> dict[str, str]:
        """Display titles of every registered method and ``method:variant``."""
        titles: dict[str, str] = {}
        for name in self.methods:
            titles.update(self.methods.get(name).titles())
        return titles

    def protocol_objects(self) -> dict[str, Any]:
        """Every registered protocol by name."""
        return {name: self.protocols.get(name) for name in self.protocols}


def _autoload_disabled() -> bool:
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


HOOKS = (
    ("register_methods", "method"),
    ("register_protocols", "protocol"),
    ("register_datasets", "dataset"),
)


@dataclass
class _Loaded:
    """A plugin manager with the plugins it holds, in registration order, and those skipped."""

    manager: pluggy.PluginManager
    plugins: list[tuple[object, Provider]] = field(default_factory=list)
    broken: list[BrokenPlugin] = field(default_factory=list)

    def skip(
        self,
        plugin: object | None,
        provider: Provider,
        reason: str,
        names: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        """Leave a broken plugin out: unregistered, and recorded with why."""
        if plugin is not None and self.manager.is_registered(plugin):
            self.manager.unregister(plugin)
        self.plugins = [(p, v) for p, v in self.plugins if p is not plugin]
        self.broken.append(BrokenPlugin(provider, reason, names or {}))


def _entry_points() -> list:
    """The group's entry points, the suite's own first (so that a third-party plugin can
    never take a built-in name)."""
    found = list(entry_points(group=ENTRY_POINT_GROUP))
    return sorted(found, key=lambda ep: _distribution(ep)[0] != DISTRIBUTION)


def _distribution(ep) -> tuple[str, str]:
    dist = ep.dist
    if dist is None:
        return "unknown", "unknown"
    return dist.metadata["Name"] or "unknown", dist.version or "unknown"


def _load(autoload: bool, extra_plugins: Iterable[object]) -> _Loaded:
    loaded = _Loaded(pluggy.PluginManager(ENTRY_POINT_GROUP))
    pm = loaded.manager
    pm.add_hookspecs(hookspecs)
    for ep in _entry_points():
        dist_name, version = _distribution(ep)
        if not autoload and dist_name != DISTRIBUTION:
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        provider = Provider(ep.name, dist_name, version)
        try:
            plugin = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit included: a plugin never ends the command
            loaded.skip(None, provider, f"importing {ep.value} raised {_described(exc)}")
            continue
        try:
            pm.register(plugin, name=ep.name)
            _check_hooks(pm, plugin)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # pluggy's PluginValidationError, or worse
            loaded.skip(plugin, provider, first_line(exc))
            continue
        loaded.plugins.append((plugin, provider))
    for plugin in extra_plugins:
        pm.register(plugin)
        _check_hooks(pm, plugin)
        name = getattr(plugin, "__name__", type(plugin).__name__)  # a module, or an object
        loaded.plugins.append((plugin, Provider(name, "inline", "unversioned")))
    return loaded


def _check_hooks(pm: pluggy.PluginManager, plugin: object) -> None:
    """Refuse a hook implementation that names no hook of the suite (a misspelt hook)."""
    for caller in pm.get_hookcallers(plugin) or []:
        if not caller.has_spec():
            hooks = sorted(n for n, c in vars(pm.hook).items() if c.has_spec())
            raise pluggy.PluginValidationError(
                plugin,
                f"unknown hook {caller.name!r} in plugin {pm.get_name(plugin)!r}; the hooks "
                f"are {', '.join(hooks)}",
            )


def get_plugin_manager(
    autoload: bool | None = None, extra_plugins: Iterable[object] = ()
) -> pluggy.PluginManager:
    """A fresh plugin manager with the built-in plugins, and third-party ones unless disabled.

    ``extra_plugins`` are registered as well (modules or objects with hook implementations);
    this is how tests and notebooks add an inline plugin. Broken plugins found through entry
    points are reported on stderr and left out.
    """
    if autoload is None:
        autoload = not _autoload_disabled()
    loaded = _load(autoload, extra_plugins)
    _report(loaded.broken)
    return loaded.manager


#: Broken plugins already reported by this process (each is reported once).
_REPORTED: set[tuple[str, str, str]] = set()


def _report(broken: Iterable[BrokenPlugin]) -> None:
    for plugin in broken:
        key = (plugin.provider.plugin, plugin.provider.distribution, plugin.reason)
        if key not in _REPORTED:
            _REPORTED.add(key)
            print(f"warning: {plugin} is broken and was skipped: {plugin.reason}", file=sys.stderr)


def _fill(loaded: _Loaded) -> dict[str, Table[Any]]:
    """Ask each plugin, in order, to register its entries; a plugin whose hooks raise or
    register invalid entries is skipped with all it registered (an inline plugin's error is
    raised)."""
    tables: dict[str, Table[Any]] = {kind: Table(kind) for _, kind in HOOKS}
    pm = loaded.manager
    for plugin, provider in list(loaded.plugins):
        staged: dict[str, dict[str, Entry[Any]]] = {kind: {} for _, kind in HOOKS}
        tried: dict[str, list[str]] = {kind: [] for _, kind in HOOKS}
        try:
            for hook_name, kind in HOOKS:
                hook: Callable[..., Any] = getattr(pm.hook, hook_name)
                for impl in hook.get_hookimpls():
                    if impl.plugin is not plugin:
                        continue
                    register = Register(kind, tables[kind].entries, provider, staged[kind])
                    try:
                        impl.function(register=register)
                    except (UserError, KeyboardInterrupt):
                        raise
                    except BaseException as exc:  # SystemExit included
                        raise UserError(f"{hook_name} raised {_described(exc)}") from exc
                    finally:
                        tried[kind].extend(register.tried)
        except UserError as exc:
            if provider.distribution == "inline":
                raise
            names = {kind: tuple(found) for kind, found in tried.items() if found}
            loaded.skip(plugin, provider, str(exc), names)
            continue
        for kind, entries in staged.items():
            tables[kind].entries.update(entries)
    for table in tables.values():
        table.broken = tuple(loaded.broken)
    return tables


def build_registry(autoload: bool | None = None, extra_plugins: Iterable[object] = ()) -> Registry:
    """Ask every plugin to register its methods, protocols and datasets; broken third-party
    plugins are reported once on stderr and skipped."""
    if autoload is None:
        autoload = not _autoload_disabled()
    extra_plugins = tuple(extra_plugins)
    loaded = _load(autoload, extra_plugins)
    tables = _fill(loaded)
    _report(loaded.broken)
    return Registry(
        methods=tables["method"],
        protocols=tables["protocol"],
        datasets=tables["dataset"],
        plugin_manager=loaded.manager,
        autoload=autoload,
        extra_plugins=extra_plugins,
    )
