"""The whole extension API of the suite: every hook a plugin can implement.

A plugin is a module (or object) with functions decorated by :data:`hookimpl`, made known
to the suite through the entry-point group ``vlprompt_bench`` of its distribution::

    [project.entry-points.vlprompt_bench]
    my_method = "my_package.plugin"

The built-in methods, protocols and datasets are plugins of exactly this kind, declared in
the suite's own ``pyproject.toml``. Hooks receive a typed ``register`` callable; a plugin
never touches a global registry. A plugin that registers a name another plugin already
registered, or whose hooks raise or register something malformed, is reported once (naming
the plugin, its distribution and what went wrong) and skipped with all it registered; the
suite's own plugins register first, so a third-party plugin cannot take their names.

This module imports nothing heavy: the types in the signatures are for documentation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

from benchmark import ENTRY_POINT_GROUP

if TYPE_CHECKING:
    from benchmark.datasets.spec import DatasetSpec
    from benchmark.protocol import Protocol
    from benchmark.registry import MethodSpec, Register

hookspec = pluggy.HookspecMarker(ENTRY_POINT_GROUP)
hookimpl = pluggy.HookimplMarker(ENTRY_POINT_GROUP)


# -- registration: called once when the registry is built ---------------------------------


@hookspec
def register_methods(register: Register[MethodSpec]) -> None:
    """Register training methods.

    Call ``register(MethodSpec(...))`` once per method. A :class:`~benchmark.registry.MethodSpec`
    names the method and points (``"module:attribute"``) at the object that implements
    :class:`~benchmark.method.Method`; the module is imported only when the method runs,
    so listing methods stays cheap.
    """


@hookspec
def register_protocols(register: Register[Protocol]) -> None:
    """Register evaluation protocols.

    Call ``register(protocol)`` with an object implementing
    :class:`~benchmark.protocol.Protocol`: it decides which datasets a cell trains on, which
    samples and class names are used for training, and which splits are evaluated.
    """


@hookspec
def register_datasets(register: Register[DatasetSpec]) -> None:
    """Register datasets.

    Call ``register(DatasetSpec(...))`` with a :class:`~benchmark.datasets.spec.DatasetSpec`:
    its name, its world (``"standard"`` for the datasets of the papers, ``"mini"`` for the
    offline mini world, anything else for your own), its role in the protocols (``source``,
    ``target`` or ``shift``) and a ``load(data_root)`` function returning the splits.
    """


# -- run time --------------------------------------------------------------------------------


@hookspec
def on_result(rows: list[dict[str, Any]]) -> None:
    """See the result rows of one finished run, right after they were written.

    ``rows`` are the tidy rows of :mod:`benchmark.results` (one per evaluated split and
    metric), as plain dictionaries. Use it to log to an experiment tracker, for example.
    Exceptions raised here are reported and do not stop the benchmark.
    """
