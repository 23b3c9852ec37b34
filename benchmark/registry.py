"""The plugin manager and the registry of methods, protocols and datasets it fills.

:func:`get_plugin_manager` builds a fresh :class:`pluggy.PluginManager` per call: the
suite's own plugins and third-party plugins are both found through the entry-point group
``vlprompt_bench``; third-party autoloading can be switched off (``--no-plugin-autoload`` or
the environment variable ``VLPROMPT_BENCH_DISABLE_PLUGIN_AUTOLOAD=1``) so that numbers do not
depend on what else happens to be installed. :func:`build_registry` asks every plugin to
register its entries and rejects duplicate names, naming both providers.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

import pluggy

from benchmark import DISTRIBUTION, ENTRY_POINT_GROUP, __version__, hookspecs
from benchmark.errors import UserError, unknown_name

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
        if not isinstance(self.target, str):
            return self.target
        module_name, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module_name), attribute)

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


T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    value: T
    provider: Provider


class Register(Generic[T]):
    """The callable handed to a registration hook: ``register(entry)``."""

    def __init__(self, kind: str, table: dict[str, Entry[T]], provider: Provider) -> None:
        self._kind = kind
        self._table = table
        self._provider = provider

    def __call__(self, value: T) -> None:
        name = getattr(value, "name", None)
        if not isinstance(name, str) or not name:
            raise UserError(f"plugin {self._provider} registered a {self._kind} without a name")
        if name in self._table:
            first = self._table[name].provider
            raise UserError(
                f"{self._kind} {name!r} is registered twice: by {first} and by {self._provider}"
            )
        self._table[name] = Entry(value, self._provider)


@dataclass
class Table(Generic[T]):
    """Registered entries of one kind, looked up by exact name or by wildcard."""

    kind: str
    entries: dict[str, Entry[T]] = field(default_factory=dict)

    def names(self) -> list[str]:
        return sorted(self.entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def get(self, name: str) -> T:
        if name not in self.entries:
            raise unknown_name(self.kind, name, self.entries)
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
                raise unknown_name(self.kind, pattern, self.entries)
            chosen.extend(m for m in matches if m not in chosen)
        return chosen


@dataclass
class Registry:
    """Everything the plugins registered, plus the manager for run-time hooks.

    A registry pickles as the recipe that built it (``autoload`` and the extra plugins, which
    must pickle themselves) and is built again where it is unpickled: that is how it reaches
    the worker processes of a distributed run.
    """

    methods: Table[MethodSpec]
    protocols: Table[Any]
    datasets: Table[Any]
    plugin_manager: pluggy.PluginManager
    autoload: bool = True
    extra_plugins: tuple[object, ...] = ()

    def __reduce__(self):
        return build_registry, (self.autoload, self.extra_plugins)

    def method_titles(self) -> dict[str, str]:
        """Display titles of every registered method and ``method:variant``."""
        titles: dict[str, str] = {}
        for name in self.methods:
            titles.update(self.methods.get(name).titles())
        return titles


def _autoload_disabled() -> bool:
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def get_plugin_manager(
    autoload: bool | None = None, extra_plugins: Iterable[object] = ()
) -> pluggy.PluginManager:
    """A fresh plugin manager with the built-in plugins, and third-party ones unless disabled.

    ``extra_plugins`` are registered as well (modules or objects with hook implementations);
    this is how tests and notebooks add an inline plugin.
    """
    if autoload is None:
        autoload = not _autoload_disabled()
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        dist_name = dist.metadata["Name"] if dist is not None else "unknown"
        if not autoload and dist_name != DISTRIBUTION:
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party plugin must name itself
            raise UserError(
                f"plugin {ep.name!r} from {dist_name} failed to load ({ep.value}): {exc}",
                exit_code=4,
            ) from exc
        pm.register(plugin, name=ep.name)
        version = dist.version if dist is not None else "unknown"
        _PROVIDERS[id(plugin)] = Provider(ep.name, dist_name, version)
    for plugin in extra_plugins:
        pm.register(plugin)
    pm.check_pending()
    return pm


_PROVIDERS: dict[int, Provider] = {}


def _provider_of(pm: pluggy.PluginManager, plugin: object) -> Provider:
    known = _PROVIDERS.get(id(plugin))
    if known is not None and pm.get_name(plugin) == known.plugin:
        return known
    return Provider(pm.get_name(plugin) or repr(plugin), "inline", "unversioned")


def _fill(pm: pluggy.PluginManager, hook_name: str, kind: str) -> Table[Any]:
    table: Table[Any] = Table(kind)
    hook: Callable[..., Any] = getattr(pm.hook, hook_name)
    # Called one implementation at a time so that each registration knows its provider.
    for impl in reversed(hook.get_hookimpls()):
        impl.function(register=Register(kind, table.entries, _provider_of(pm, impl.plugin)))
    return table


def build_registry(autoload: bool | None = None, extra_plugins: Iterable[object] = ()) -> Registry:
    """Ask every plugin to register its methods, protocols and datasets."""
    if autoload is None:
        autoload = not _autoload_disabled()
    extra_plugins = tuple(extra_plugins)
    pm = get_plugin_manager(autoload=autoload, extra_plugins=extra_plugins)
    return Registry(
        methods=_fill(pm, "register_methods", "method"),
        protocols=_fill(pm, "register_protocols", "protocol"),
        datasets=_fill(pm, "register_datasets", "dataset"),
        plugin_manager=pm,
        autoload=autoload,
        extra_plugins=extra_plugins,
    )


def suite_provider() -> Provider:
    return Provider("benchmark", DISTRIBUTION, __version__)
