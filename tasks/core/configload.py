"""Config files and ``INVOKE_*`` variables, loaded strictly: a bad one is one line, exit 1.

Invoke loads the project's ``invoke.yaml`` right after importing ``tasks.py``, then the ``-f``
file and the ``INVOKE_*`` variables, and merges them over the collection defaults. Out of the box
a malformed file, a wrongly shaped value (``environments: []``) or an uncastable variable
(``INVOKE_BACKUP_LEVEL=abc``) ends in a Python traceback, and ``INVOKE_..._CONFIRM=maybe`` reads
as true. :func:`install` (called by ``tasks.py`` as the root collection loads) makes
:class:`invoke.config.Config`:

- parse YAML with PyYAML's C loader when available (the vendored pure-Python one costs several
  milliseconds of every ``inv`` start) and turn a syntax error into ``FILE:LINE: message``;
- refuse a file whose top level is not a mapping;
- name the key, its value and the file when a value cannot merge with the default's shape;
- cast ``INVOKE_*`` values by the schema (:mod:`tasks.core.settings`): booleans only from
  true/false/yes/no/on/off/1/0, integers and numbers only from digits, lists from ``a,b`` or a
  JSON list, each failure naming the variable, the value and what is valid.

Each failure is raised as :class:`invoke.exceptions.Exit`, which Invoke prints as one line and
exits 1 with, because these errors happen before any task (and its boundary) runs.

One more patch is for speed only: :meth:`invoke.Collection.__getitem__` ("the task named X")
computes and throws away a full copy of the merged configuration for every lookup, and Invoke
looks up every task to build its parser (``inv --list`` included): with every topic's defaults
on the root that was ~30 copies of the whole config per start. The patched lookup returns the
same task without the copy (``task_with_config``, which Invoke uses for a task's config, is
untouched). And Invoke's parser deep-copies every task's parser context (every flag's
:class:`invoke.parser.Argument`) twice per start, through the generic ``copy.deepcopy``: the
patched ``ParserContext.__deepcopy__`` and ``Argument.__deepcopy__`` build the same copies
directly (an argument's values are immutable but for lists, which are copied; the lexicons
keep their aliases; one argument shared by several lexicons stays one object).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from invoke.config import AmbiguousMergeError, Config
from invoke.env import Environment
from invoke.exceptions import AmbiguousEnvVar, Exit, UncastableEnvVar

_INSTALLED: dict[str, Any] = {}


def _yaml_loader() -> tuple[Any, Any]:
    """(yaml module, the fastest safe loader): PyYAML's C loader when libyaml is built in.

    PyYAML itself is already imported at this point (Invoke's vendored copy loads its C
    extension), so this costs no import; parsing invoke.yaml drops from ~6 ms to ~0.5 ms.
    """
    try:
        import yaml
    except ImportError:  # only Invoke's vendored copy: pure Python
        from invoke.util import yaml  # type: ignore[no-redef]
    return yaml, getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader


RUNTIME_SUFFIXES = (".yaml", ".yml", ".json", ".py")


def check_runtime_path(path: str | None) -> None:
    """``-f FILE`` must name a config file: Invoke silently ignores a missing one (the run then
    uses invoke.yaml's targets and directories) and ends in a traceback on a directory or
    another extension."""
    if not path:
        return
    valid = "an existing .yaml, .yml, .json or .py config file"
    if not os.path.isfile(path):
        reason = "is a directory" if os.path.isdir(path) else "does not exist"
        raise Exit(f"-f: {path!r} is not valid ({reason}); valid: {valid}")
    if not path.endswith(RUNTIME_SUFFIXES):
        raise Exit(f"-f: {path!r} is not valid (unsupported extension); valid: {valid}")


def load_yaml_file(path: str) -> Any:
    """A config file's data; a syntax error or a non-mapping top level is one line."""
    yaml, loader = _yaml_loader()
    with open(path, encoding="utf-8") as handle:
        try:
            data = yaml.load(handle, Loader=loader)  # nosec B506: a safe loader
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else path
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise Exit(f"{where}: not valid YAML ({problem})") from None
        except UnicodeDecodeError as exc:
            raise Exit(f"{path}: not valid UTF-8 text ({exc.reason})") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise Exit(
            f"{path}: the top level is {_kind(data)}; valid: a mapping of config keys "
            "(environments:, deploy:, backup: ...)"
        )
    return data


def _kind(value: object) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return f"a list ({value!r})" if len(repr(value)) < 40 else "a list"
    return f"{value!r}"


def shape_conflict(base: Mapping[str, Any], updates: Any, path: tuple[str, ...] = ()) -> str:
    """The first key where ``updates`` cannot merge into ``base`` (dict vs non-dict), or ""."""
    if not isinstance(updates, Mapping):
        return ""
    for key, value in updates.items():
        if key not in base:
            continue
        here = (*path, str(key))
        if isinstance(base[key], dict) != isinstance(value, dict):
            return ".".join(here)
        if isinstance(value, dict):
            found = shape_conflict(base[key], value, here)
            if found:
                return found
    return ""


def _describe_merge_error(config: Config) -> str:
    """Replay Invoke's merge order to find which source and key broke it."""
    from invoke.config import merge_dicts

    merged: dict[str, Any] = {}
    sources = [
        ("collection defaults", getattr(config, "_defaults", {})),
        ("collection defaults", getattr(config, "_collection", {})),
        (str(getattr(config, "_system_path", "") or "system config"), config._system),
        (str(getattr(config, "_user_path", "") or "user config"), config._user),
        (str(getattr(config, "_project_path", "") or "project config"), config._project),
        ("INVOKE_* variables", config._env),
        (f"-f {getattr(config, '_runtime_path', '')}", config._runtime),
        ("overrides", config._overrides),
    ]
    for label, data in sources:
        key = shape_conflict(merged, data)
        if key:
            value = _lookup(data, key)
            default = _lookup(merged, key)
            want = "a mapping" if isinstance(default, dict) else f"a single value like {default!r}"
            return f"{key}: {_kind(value)} is not valid (set in {label}); valid: {want}"
        merge_dicts(merged, data or {})
    return "the configuration cannot be merged (a mapping where a value was expected)"


def _lookup(data: Mapping[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        data = data[key]
    return data


class StrictEnvironment(Environment):
    """Invoke's ``INVOKE_*`` loader, casting by the schema and naming the variable on failure.

    Text-valued keys (names, paths, durations, choices) keep the text: the schema validates them
    with the rest of the config when a task starts, naming the variable as where they were set.
    """

    def _path_set(self, key_path: Any, value: str) -> None:
        from tasks.core.settings import Where, kind_at

        var = (self._prefix or "") + self._to_env_var(key_path)
        kind = kind_at(list(key_path))
        if kind is None:
            new = strict_cast(self._path_get(key_path), value, var)
        elif isinstance(kind.default, str) or kind.default is None:
            new = value
        else:
            new = kind.parse(value, Where(var))
            new = list(new) if isinstance(new, tuple) else new
        obj = self.data
        for key in key_path[:-1]:
            obj = obj.setdefault(key, {})
        obj[key_path[-1]] = new


def strict_cast(old: Any, value: str, var: str) -> Any:
    """Invoke's cast of ``INVOKE_*`` text by the existing value's type, but strict."""
    from tasks.core.settings import Bool, Float, Int, List, Where

    where = Where(var)
    if isinstance(old, bool):
        return Bool(False).parse(value, where)
    if isinstance(old, int):
        return Int(0).parse(value, where)
    if isinstance(old, float):
        return Float(0.0).parse(value, where)
    if isinstance(old, (list, tuple)):
        return list(List([]).parse(value, where))
    return value


def _task_named(collection: Any, name: str | None = None) -> Any:
    """What ``Collection.__getitem__`` returns (the task named ``name``), without computing
    the merged configuration along the way."""
    if not name:
        if not collection.default:
            raise ValueError("This collection has no default task.")
        return _task_named(collection, collection.default)
    name = collection.transform(name)
    if "." in name:
        child, rest = collection._split_path(name)
        return _task_named(collection.collections[child], rest)
    if name in collection.collections:
        return _task_named(collection.collections[name], "")
    return collection.tasks[name]


def _copy_argument(argument: Any, memo: dict[int, Any]) -> Any:
    """``copy.deepcopy`` of an :class:`invoke.parser.Argument`, without the generic machinery."""
    new = object.__new__(type(argument))
    state = dict(argument.__dict__)
    for key, value in state.items():
        if isinstance(value, list):
            state[key] = list(value)
    new.__dict__.update(state)
    return new


def _copy_context(context: Any, memo: dict[int, Any]) -> Any:
    """``copy.deepcopy`` of an :class:`invoke.parser.ParserContext`."""

    def argument(arg: Any) -> Any:
        copied = memo.get(id(arg))
        if copied is None:
            copied = memo[id(arg)] = _copy_argument(arg, memo)
        return copied

    def lexicon(old: Any) -> Any:
        new = type(old)()
        for key in dict.keys(old):
            dict.__setitem__(new, key, argument(dict.__getitem__(old, key)))
        new.aliases.update(old.aliases)
        return new

    new = object.__new__(type(context))
    state = dict(context.__dict__)
    state["args"] = lexicon(context.args)
    state["flags"] = lexicon(context.flags)
    state["positional_args"] = [argument(a) for a in context.positional_args]
    state["inverse_flags"] = dict(context.inverse_flags)
    new.__dict__.update(state)
    return new


def install() -> None:
    """Patch :class:`invoke.config.Config` (and the task lookup) as described above; idempotent."""
    if _INSTALLED:
        return
    from invoke.collection import Collection
    from invoke.parser import Argument, ParserContext

    Collection.__getitem__ = _task_named  # type: ignore[method-assign]
    Argument.__deepcopy__ = _copy_argument  # type: ignore[attr-defined]
    ParserContext.__deepcopy__ = _copy_context  # type: ignore[attr-defined]
    _INSTALLED["merge"] = original_merge = Config.merge
    _INSTALLED["load_shell_env"] = original_shell = Config.load_shell_env
    _INSTALLED["load_runtime"] = original_runtime = Config.load_runtime

    def load_runtime(self: Config, merge: bool = True) -> None:
        check_runtime_path(getattr(self, "_runtime_path", None))
        original_runtime(self, merge=merge)

    def _load_yaml(self: Config, path: Any) -> Any:
        return load_yaml_file(os.fspath(path))

    def merge(self: Config) -> None:
        try:
            original_merge(self)
        except AmbiguousMergeError:
            raise Exit(_describe_merge_error(self)) from None

    def load_shell_env(self: Config) -> None:
        import invoke.config as config_module

        saved = config_module.Environment
        config_module.Environment = StrictEnvironment  # type: ignore[misc]
        try:
            original_shell(self)
        except (UncastableEnvVar, AmbiguousEnvVar) as exc:
            raise Exit(f"INVOKE_* variables: {exc}") from None
        except Exception as exc:
            from tasks.core.errors import ConfigError

            if isinstance(exc, ConfigError):
                raise Exit(exc.message) from None
            raise
        finally:
            config_module.Environment = saved  # type: ignore[misc]

    Config._load_yaml = _load_yaml  # type: ignore[method-assign]
    Config._load_yml = _load_yaml  # type: ignore[attr-defined]
    Config.merge = merge  # type: ignore[method-assign]
    Config.load_shell_env = load_shell_env  # type: ignore[method-assign]
    Config.load_runtime = load_runtime  # type: ignore[method-assign]
