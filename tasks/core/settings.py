"""Declarative settings: one schema per topic gives the defaults and validates config keys,
``INVOKE_*`` variables and flag values alike.

A schema is a :class:`Section` of kinds (:class:`Str`, :class:`Int`, :class:`Choice`, ...).
``Section.defaults()`` is what the root collection registers (so every task sees every key and
``INVOKE_*`` / ``-f`` can override each one); :func:`load` validates the merged config of one
topic into read-only :class:`Settings`; :func:`flag` converts a flag's text with the same rules.
Every failure is a :class:`ConfigError` of one line: the key (or flag, or variable), the bad
value, where it was set, and what is valid.

This module is imported when ``inv`` loads the collection (the topics' schemas are built from
it), so it imports nothing heavy.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tasks.core.errors import ConfigError

# Topic name -> schema; filled by the root collection (tasks.py) through :func:`register`.
TOPICS: dict[str, Section] = {}

_DURATION = r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_LABEL_DESC = (
    "a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or "
    "digit, at most 63 characters"
)
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


class Where:
    """Names a value in messages: a config key (and where it was set) or a flag."""

    __slots__ = ("name", "config", "root")

    def __init__(self, name: str, config: Any = None, root: Path | None = None) -> None:
        self.name = name
        self.config = config  # the invoke Config the value came from (None for a flag)
        self.root = root

    def child(self, key: str) -> Where:
        return Where(f"{self.name}.{key}" if self.name else key, self.config, self.root)

    def fail(self, value: object, valid: str) -> ConfigError:
        origin = origin_of(self.config, self.name.split(".")) if self.config is not None else ""
        origin = f" (set in {origin})" if origin else ""
        return ConfigError(f"{self.name}: {_show(value)} is not valid{origin}; valid: {valid}")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class Kind:
    """One config value: its default, its help line, and how it is checked and converted."""

    __slots__ = ("default", "help", "secret_env")

    def __init__(self, default: Any, help: str = "", *, secret_env: bool = False) -> None:
        self.default = default
        self.help = help
        self.secret_env = secret_env  # the value names environment variable(s) holding secrets

    def defaults(self) -> Any:
        value = self.default
        return list(value) if isinstance(value, (list, tuple)) else value

    def describe(self) -> str:  # what is valid, for messages
        raise NotImplementedError

    def check(self, value: Any, where: Where) -> Any:  # a config value -> the typed value
        raise NotImplementedError

    def parse(self, text: str, where: Where) -> Any:
        """A value given as text (a flag, an ``INVOKE_*`` variable) -> the typed value."""
        return self.check(text, where)


class Str(Kind):
    __slots__ = ("pattern", "desc", "empty", "max_len")

    def __init__(
        self,
        default: str = "",
        help: str = "",
        *,
        pattern: str | None = None,
        desc: str | None = None,
        empty: bool = True,
        max_len: int | None = None,
        secret_env: bool = False,
    ) -> None:
        super().__init__(default, help, secret_env=secret_env)
        self.pattern = pattern  # compiled on first use (inv --list builds every schema)
        self.desc = desc
        self.empty = empty
        self.max_len = max_len

    def describe(self) -> str:
        if self.desc:
            return self.desc
        if self.pattern is not None:
            return f"text matching {self.pattern}"
        return "text" if self.empty else "non-empty text"

    def check(self, value: Any, where: Where) -> str:
        if not isinstance(value, str):  # 123, true, null in YAML are not text: quote them
            raise where.fail(value, self.describe() + " (quote numbers and words like yes)")
        if value == "":
            if self.empty:
                return value
            raise where.fail(value, self.describe())
        if self.max_len is not None and len(value) > self.max_len:
            raise where.fail(value, f"{self.describe()} (at most {self.max_len} characters)")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise where.fail(value, self.describe())
        return value


class EnvName(Str):
    """The name of an environment variable (empty allowed unless ``empty=False``)."""

    __slots__ = ()

    def __init__(
        self, default: str = "", help: str = "", *, empty: bool = True, secret_env: bool = False
    ) -> None:
        super().__init__(
            default,
            help,
            pattern=ENV_NAME,
            desc="an environment variable name (letters, digits, '_')",
            empty=empty,
            secret_env=secret_env,
        )


class Choice(Kind):
    __slots__ = ("choices",)

    def __init__(self, default: str, choices: Sequence[str], help: str = "") -> None:
        super().__init__(default, help)
        self.choices = tuple(choices)

    def describe(self) -> str:
        return ", ".join(self.choices)

    def check(self, value: Any, where: Where) -> str:
        if not isinstance(value, str) or value not in self.choices:
            raise where.fail(value, self.describe())
        return value


class Bool(Kind):
    __slots__ = ()

    def describe(self) -> str:
        return "true or false"

    def check(self, value: Any, where: Where) -> bool:
        if isinstance(value, bool):
            return value
        raise where.fail(value, self.describe())

    def parse(self, text: str, where: Where) -> bool:
        word = text.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise where.fail(text, f"one of {', '.join(TRUE_WORDS + FALSE_WORDS)}")


class Int(Kind):
    __slots__ = ("minimum", "maximum", "desc")

    def __init__(
        self,
        default: int,
        help: str = "",
        *,
        minimum: int | None = None,
        maximum: int | None = None,
        desc: str | None = None,
    ) -> None:
        super().__init__(default, help)
        self.minimum = minimum
        self.maximum = maximum
        self.desc = desc

    def describe(self) -> str:
        if self.desc:
            return self.desc
        if self.minimum is not None and self.maximum is not None:
            return f"an integer from {self.minimum} to {self.maximum}"
        if self.minimum is not None:
            return f"an integer >= {self.minimum}"
        if self.maximum is not None:
            return f"an integer <= {self.maximum}"
        return "an integer"

    def check(self, value: Any, where: Where) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise where.fail(value, self.describe())
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            raise where.fail(value, self.describe())
        return value

    def parse(self, text: str, where: Where) -> int:
        stripped = text.strip()
        if not re.fullmatch(r"[-+]?\d+", stripped):
            raise where.fail(text, self.describe())
        return self.check(int(stripped), where)


class Port(Int):
    __slots__ = ()

    def __init__(self, default: int, help: str = "") -> None:
        super().__init__(default, help, minimum=1, maximum=65535, desc="a port number (1-65535)")


class Float(Kind):
    """A number; ``above`` is an exclusive lower bound (timeouts must be > 0)."""

    __slots__ = ("above", "maximum")

    def __init__(
        self,
        default: float,
        help: str = "",
        *,
        above: float | None = None,
        maximum: float | None = None,
    ) -> None:
        super().__init__(default, help)
        self.above = above
        self.maximum = maximum

    def describe(self) -> str:
        parts = [f"> {self.above:g}"] if self.above is not None else []
        parts += [f"<= {self.maximum:g}"] if self.maximum is not None else []
        return "a number" + (" " + " and ".join(parts) if parts else "")

    def check(self, value: Any, where: Where) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise where.fail(value, self.describe())
        number = float(value)
        if (
            number != number
            or number in (float("inf"), float("-inf"))
            or (self.above is not None and number <= self.above)
            or (self.maximum is not None and number > self.maximum)
        ):
            raise where.fail(value, self.describe())
        return number

    def parse(self, text: str, where: Where) -> float:
        try:
            number = float(text.strip())
        except ValueError:
            raise where.fail(text, self.describe()) from None
        return self.check(number, where)


class Duration(Kind):
    """``10m``, ``90s``, ``1h30m`` (Helm's spelling); the typed value is whole seconds."""

    __slots__ = ("min_seconds",)

    def __init__(self, default: str, help: str = "", *, min_seconds: int = 1) -> None:
        super().__init__(default, help)
        self.min_seconds = min_seconds

    def describe(self) -> str:
        return f"a duration like 90s, 10m or 1h30m, at least {self.min_seconds}s"

    def check(self, value: Any, where: Where) -> int:
        match = re.fullmatch(_DURATION, value) if isinstance(value, str) and value else None
        if match is None:
            raise where.fail(value, self.describe())
        hours, minutes, seconds = (int(g or 0) for g in match.groups())
        total = hours * 3600 + minutes * 60 + seconds
        if total < self.min_seconds:
            raise where.fail(value, self.describe())
        return total


class FilePath(Kind):
    """A path, relative to the project root; the typed value is an absolute :class:`Path`.

    ``kind``: ``"file"``, ``"dir"`` or ``"any"`` (what an existing path must be);
    ``must_exist``: the path must exist; ``empty``: ``""`` allowed (typed value ``None``).
    """

    __slots__ = ("kind", "must_exist", "empty")

    def __init__(
        self,
        default: str,
        help: str = "",
        *,
        kind: str = "any",
        must_exist: bool = False,
        empty: bool = False,
    ) -> None:
        super().__init__(default, help)
        self.kind = kind
        self.must_exist = must_exist
        self.empty = empty

    def describe(self) -> str:
        what = {"file": "a file", "dir": "a directory", "any": "a path"}[self.kind]
        return f"{'an existing ' + what[2:] if self.must_exist else what}" + (
            " (relative paths are relative to the project root)"
        )

    def check(self, value: Any, where: Where) -> Path | None:
        if not isinstance(value, str):
            raise where.fail(value, self.describe())
        if value == "":
            if self.empty:
                return None
            raise where.fail(value, self.describe())
        if "\0" in value:
            raise where.fail(value, self.describe())
        path = Path(os.path.expanduser(value))
        if not path.is_absolute():
            path = (where.root or Path.cwd()) / path
        exists = path.exists()
        if self.must_exist and not exists:
            raise where.fail(value, f"{self.describe()}; {path} does not exist")
        if exists and self.kind == "dir" and not path.is_dir():
            raise where.fail(value, f"{self.describe()}; {path} is not a directory")
        if exists and self.kind == "file" and path.is_dir():
            raise where.fail(value, f"{self.describe()}; {path} is a directory")
        return path


class List(Kind):
    """A list of ``item`` values (text given as ``a,b`` or a JSON list ``["a","b"]``)."""

    __slots__ = ("item", "min_items")

    def __init__(
        self,
        default: Sequence[Any],
        item: Kind | None = None,
        help: str = "",
        *,
        min_items: int = 0,
        secret_env: bool = False,
    ) -> None:
        super().__init__(list(default), help, secret_env=secret_env)
        self.item = item or Str()
        self.min_items = min_items

    def describe(self) -> str:
        least = f" (at least {self.min_items})" if self.min_items else ""
        return f"a list{least} of {self.item.describe()}"

    def check(self, value: Any, where: Where) -> tuple[Any, ...]:
        if not isinstance(value, (list, tuple)) or len(value) < self.min_items:
            raise where.fail(value, self.describe())
        return tuple(self.item.check(v, where.child(str(i))) for i, v in enumerate(value))

    def parse(self, text: str, where: Where) -> tuple[Any, ...]:
        stripped = text.strip()
        if stripped.startswith("["):
            import json

            try:
                items = json.loads(stripped)
            except ValueError:
                raise where.fail(text, self.describe() + " (a JSON list, or a,b,c)") from None
            return self.check(items, where)
        parts = [p.strip() for p in stripped.split(",")] if stripped else []
        return self.check([self.item.parse(p, where) for p in parts], where)


class Section(Kind):
    """A mapping with fixed keys; an unknown key is an error naming the valid ones."""

    __slots__ = ("fields", "check_all")

    def __init__(
        self, fields: Mapping[str, Kind], help: str = "", *, check_all: Any = None
    ) -> None:
        super().__init__(None, help)
        self.fields = dict(fields)
        self.check_all = check_all  # callable(Settings, Where) for rules across keys

    def __getitem__(self, key: str) -> Kind:
        return self.fields[key]

    def defaults(self) -> dict[str, Any]:
        return {key: kind.defaults() for key, kind in self.fields.items()}

    def describe(self) -> str:
        return "a mapping with keys " + ", ".join(self.fields)

    def check(self, value: Any, where: Where) -> Settings:
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise where.fail(value, self.describe())
        unknown = sorted(str(k) for k in value if k not in self.fields)
        if unknown:
            raise ConfigError(
                f"{where.child(unknown[0]).name}: unknown key; valid keys: {', '.join(self.fields)}"
            )
        result = Settings(
            (key, kind.check(value[key] if key in value else kind.defaults(), where.child(key)))
            for key, kind in self.fields.items()
        )
        if self.check_all is not None:
            self.check_all(result, where)
        return result

    def parse(self, text: str, where: Where) -> Settings:
        raise where.fail(text, self.describe() + " (set it in a config file)")


class Map(Kind):
    """A mapping with keys of the user's choosing, each value an ``item``."""

    __slots__ = ("item", "key_pattern", "key_desc")

    def __init__(
        self,
        item: Kind,
        default: Mapping[str, Any] | None = None,
        help: str = "",
        *,
        key_pattern: str | None = None,
        key_desc: str = "",
    ) -> None:
        super().__init__(dict(default or {}), help)
        self.item = item
        self.key_pattern = key_pattern
        self.key_desc = key_desc

    def defaults(self) -> dict[str, Any]:
        return _fresh(self.default)

    def describe(self) -> str:
        return f"a mapping of names to {self.item.describe()}"

    def check(self, value: Any, where: Where) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise where.fail(value, self.describe())
        result = {}
        for key, item in value.items():
            if not isinstance(key, str) or (
                self.key_pattern is not None and not re.fullmatch(self.key_pattern, key)
            ):
                raise where.fail(key, f"a key that is {self.key_desc or 'text'}")
            result[key] = self.item.check(item, where.child(key))
        return result

    def parse(self, text: str, where: Where) -> Any:
        raise where.fail(text, self.describe() + " (set it in a config file)")


def _fresh(value: Any) -> Any:
    """A copy of plain nested data (dicts, lists, scalars), cheaper than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_fresh(v) for v in value]
    return value


class Anything(Kind):
    """A value this toolkit passes through unchecked (e.g. Invoke's own keys)."""

    __slots__ = ()

    def describe(self) -> str:
        return "any value"

    def check(self, value: Any, where: Where) -> Any:
        return value


class Settings(dict):  # type: ignore[type-arg]
    """Validated settings: a read-only mapping with attribute access (``s.retention.daily``)."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def _readonly(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("Settings are read-only")

    __setitem__ = __delitem__ = __setattr__ = update = pop = setdefault = _readonly  # type: ignore
    clear = popitem = _readonly  # type: ignore[assignment]


# -- the registry and validation of the merged config ---------------------------------------


def register(topics: Mapping[str, Section]) -> dict[str, Any]:
    """Record the topics' schemas; returns their defaults (for the root ``ns.configure``)."""
    TOPICS.update(topics)
    return {name: schema.defaults() for name, schema in topics.items()}


def kind_at(keypath: Sequence[str]) -> Kind | None:
    """The schema kind of a config key path (``("backup", "level")``), or None if not ours."""
    if not keypath or keypath[0] not in TOPICS:
        return None
    kind: Kind = TOPICS[keypath[0]]
    for key in keypath[1:]:
        if isinstance(kind, Section) and key in kind.fields:
            kind = kind.fields[key]
        elif isinstance(kind, Map):
            kind = kind.item
        elif isinstance(kind, List):
            kind = kind.item
        else:
            return None
    return kind


def origin_of(config: Any, keypath: Sequence[str]) -> str:
    """Where the value at ``keypath`` was set: ``-f FILE``, ``INVOKE_X``, a config file; or ""."""
    layers = (
        ("_modifications", None, None),  # set by code at run time: no file to name
        ("_overrides", None, None),
        ("_runtime", "_runtime_path", "-f "),
        ("_env", None, ""),
        ("_project", "_project_path", ""),
        ("_user", "_user_path", ""),
        ("_system", "_system_path", ""),
    )
    for attr, path_attr, label in layers:
        data = getattr(config, attr, None)
        for key in keypath:
            if not isinstance(data, Mapping) or key not in data:
                break
            data = data[key]
        else:
            if label is None:
                return ""
            if path_attr is None:
                return "INVOKE_" + "_".join(keypath).upper()
            return label + str(getattr(config, path_attr, "") or attr.strip("_"))
    return ""


def project_root(c: Any) -> Path:
    """Directory relative config paths are resolved against (invoke.yaml's directory)."""
    config = getattr(c, "config", c)
    try:
        prefix = config._project_prefix
    except AttributeError:
        prefix = None
    return Path(prefix) if prefix else Path(os.getcwd())


def load(c: Any, topic: str) -> Settings:
    """The validated settings of ``topic`` from ``c.config`` (errors name key and origin)."""
    config = c.config if hasattr(c, "config") else c
    raw = config.get(topic)
    return TOPICS[topic].check(raw, Where(topic, config, project_root(config)))


def validate_config(c: Any) -> None:
    """Validate every registered topic (a bad key fails before any task does anything)."""
    for topic in TOPICS:
        load(c, topic)


def secret_env_names(c: Any) -> set[str]:
    """Names of the environment variables that hold the toolkit's secrets (from the schema)."""
    config = c.config if hasattr(c, "config") else c
    names: set[str] = set()
    for topic, schema in TOPICS.items():
        raw = config.get(topic)
        for kind, value in _walk(schema, raw):
            if kind.secret_env and value:
                names.update([value] if isinstance(value, str) else map(str, value))
    return names


def _walk(kind: Kind, value: Any) -> Iterator[tuple[Kind, Any]]:
    yield kind, value
    if isinstance(kind, Section) and isinstance(value, Mapping):
        for key, sub in kind.fields.items():
            if key in value:
                yield from _walk(sub, value[key])
    elif isinstance(kind, Map) and isinstance(value, Mapping):
        for item in value.values():
            yield from _walk(kind.item, item)


def flag(kind: Kind | str, value: Any, name: str) -> Any:
    """Convert a flag's value (text from the command line) with ``kind``'s rules.

    ``kind`` may be a schema key (``"backup.level"``). ``None`` (flag not given) stays None.
    """
    if value is None:
        return None
    if isinstance(kind, str):
        found = kind_at(kind.split("."))
        if found is None:
            raise KeyError(f"no schema key {kind!r}")
        kind = found
    where = Where(name)
    return kind.parse(value, where) if isinstance(value, str) else kind.check(value, where)


def resolve_path(root: Path, value: str, *, source: str, must_exist: bool = True) -> Path:
    """Resolve a config path relative to ``root``; fail naming ``source`` when it is missing."""
    path = Path(os.path.expanduser(value))
    if not path.is_absolute():
        path = root / path
    if must_exist and not path.exists():
        raise ConfigError(f"{source}: path {value!r} does not exist (looked for {path})")
    return path
