"""Plugins (pluggy), like datasette's: hook specifications, the plugin manager, and safe hook calls.

A plugin is a module (or object) with functions decorated by :data:`hookimpl`, whose names match
the specifications in :class:`HookSpecs`. It is found through the ``argilla_worker`` entry-point
group, or named in the config's ``plugin_modules``. The built-in heuristics and publishers in
``plugins/`` are registered exactly the same way. Each plugin reads its own table of the config
file (``[plugins.<name>]``) through :meth:`WorkerContext.plugin_config`.

A plugin that raises is logged with its name and skipped; the worker goes on.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pluggy

from worker.errors import ConfigError, WorkerError

logger = logging.getLogger(__name__)

PROJECT = "argilla_worker"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# entry point name → module; registered from source too when the package metadata is missing
BUILTIN_PLUGINS = {"heuristics": "plugins.heuristics", "publishers": "plugins.publishers"}


@dataclass(frozen=True)
class WorkerContext:
    """What hooks receive: the effective settings, each plugin's own config table, and whether the worker only checks
    its configuration (``checking``: `argilla-worker config check`, which writes and sends nothing — a plugin builds
    what it registers, so the check can see it, but opens no connection and posts no notice)."""

    settings: Any  # worker.config.WorkerSettings
    checking: bool = False

    def plugin_config(self, name: str) -> dict:
        return dict(self.settings.plugins.get(name, {}))


class HookSpecs:
    @hookspec
    def startup(self, context: WorkerContext) -> None:
        """Once, when the worker's services are built: read your config (``context.plugin_config(name)``),
        open connections — but not when ``context.checking`` (`argilla-worker config check`: it only reads, and
        calls ``register_scorers`` / ``register_publishers`` to see what you register). Raising here disables
        nothing else: the error is logged with your name."""

    @hookspec
    def register_scorers(self, context: WorkerContext) -> dict[str, Callable] | None:
        """Extra per-record uncertainty scores, written as float metadata (sortable in the UI).

        Return ``{name: function}``; each function takes MC-dropout probabilities ``[N, C, T]``
        (numpy) and returns ``[N]`` finite floats. Names must not clash with the built-in metadata.
        Used for single-label questions (class distributions); see :meth:`register_label_set_scorers`.
        """

    @hookspec
    def register_label_set_scorers(self, context: WorkerContext) -> dict[str, Callable] | None:
        """:meth:`register_scorers` for a dataset bound to a multi-label question.

        Each function takes the MC-dropout probabilities of each label being present ``[N, L, T]`` (numpy;
        independent sigmoids: a row does not sum to 1) and returns ``[N]`` finite floats.
        """

    @hookspec
    def register_publishers(self, context: WorkerContext) -> Sequence[Any] | None:
        """Sinks for the cleaned dataset: objects with ``publish(publication, card) -> PublishResult`` and, if
        they can refuse before anything is built, ``check()`` raising a WorkerError (run before each publication
        and by ``config check``).

        Return an empty list when not configured. Called once at start.
        """

    @hookspec
    def on_records_scored(self, model_version: str, scores: Sequence[Any]) -> None:
        """After each pushed batch: ``scores`` are the batch's RecordScore objects. Must not block long."""

    @hookspec
    def on_model_promoted(self, version: str, metrics: dict) -> None:
        """After a model became current (gate passed, or promoted by hand from the worker)."""

    @hookspec
    def on_published(self, results: Sequence[Any]) -> None:
        """After a publication: one PublishResult per sink (``published`` False when unchanged)."""


def plugin_manager(modules: Sequence[str] = (), *, entry_points: bool = True,
                   builtins: bool = True) -> pluggy.PluginManager:
    """Built-ins, then entry-point plugins, then ``modules`` (dotted names); checks every hookimpl.

    Raises:
        ConfigError: a named module cannot be imported or raises while imported, an installed plugin fails to
            load, or a plugin implements an unknown hook.
    """
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(HookSpecs)
    if entry_points:
        try:
            manager.load_setuptools_entrypoints(PROJECT)
        except Exception as error:  # an installed plugin whose import raises: its author's bug, one line here
            logger.debug("an installed plugin failed to load", exc_info=True)
            raise ConfigError(f"an installed plugin (entry points of {PROJECT!r}) failed to load: "
                              f"{type(error).__name__}: {error} (--log-level debug shows where)") from None
    for name, module in BUILTIN_PLUGINS.items():
        if builtins and not manager.has_plugin(name) and not manager.is_registered(importlib.import_module(module)):
            manager.register(importlib.import_module(module), name=name)
        elif not builtins and manager.has_plugin(name):
            manager.unregister(name=name)
    for name in modules:
        try:
            imported = importlib.import_module(name)
        except ImportError as error:
            raise ConfigError(f"plugin_modules: cannot import {name!r}: {error}") from None
        except Exception as error:  # the module's own code raised while it was imported
            logger.debug("plugin module %s failed while importing", name, exc_info=True)
            raise ConfigError(f"plugin_modules: importing {name!r} failed: {type(error).__name__}: {error} "
                              f"(--log-level debug shows where)") from None
        manager.register(imported, name=name)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        raise ConfigError(f"plugin error: {error}") from None
    return manager


def call_each(manager: pluggy.PluginManager, hook: str, **kwargs) -> list[tuple[str, Any]]:
    """Call every implementation of ``hook`` on its own: ``[(plugin name, result)]`` for those that
    returned something. One that raises is logged with its name; the others still run."""
    results = []
    for implementation in getattr(manager.hook, hook).get_hookimpls():
        try:
            result = implementation.function(**{name: kwargs[name] for name in implementation.argnames})
        except WorkerError as error:  # a plugin that says what is wrong (its config): its words, no traceback
            logger.error("plugin %s: %s; continuing without it in %s", implementation.plugin_name, error, hook)
            continue
        except Exception:
            logger.exception("plugin %s failed in %s; continuing without it", implementation.plugin_name, hook)
            continue
        if result is not None:
            results.append((implementation.plugin_name, result))
    return results


def plugin_names(manager: pluggy.PluginManager) -> list[str]:
    return sorted(name for name, _ in manager.list_name_plugin())
