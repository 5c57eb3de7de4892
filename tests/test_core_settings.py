"""The declarative schema: each kind converts and checks values, and says what is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.core.errors import ConfigError
from tasks.core.settings import (
    Bool,
    Choice,
    Duration,
    EnvName,
    FilePath,
    Float,
    Int,
    List,
    Map,
    Port,
    Section,
    Settings,
    Str,
    Where,
    flag,
)

GOOD = [
    (Str(), "x", "x"),
    (Str(pattern=r"^[a-z]+$"), "abc", "abc"),
    (EnvName(), "FLOWLET_DB_PASSWORD", "FLOWLET_DB_PASSWORD"),
    (Choice("gzip", ("gzip", "zstd")), "zstd", "zstd"),
    (Bool(False), True, True),
    (Int(0, minimum=0, maximum=19), 19, 19),
    (Port(5432), 65535, 65535),
    (Float(1.0, above=0), 2, 2.0),
    (Duration("10m", min_seconds=60), "1h30m", 5400),
    (List([], Int(0)), [1, 2], (1, 2)),
    (Map(Int(0)), {"a": 1}, {"a": 1}),
]


@pytest.mark.parametrize("kind,value,typed", GOOD, ids=[type(k).__name__ for k, _, _ in GOOD])
def test_good_values_convert(kind: object, value: object, typed: object) -> None:
    assert kind.check(value, Where("k")) == typed  # type: ignore[attr-defined]


BAD = [
    (Str(), 123, "k: 123 is not valid; valid: text (quote numbers and words like yes)"),
    (Str(), None, "k: None is not valid; valid: text (quote numbers and words like yes)"),
    (Str(empty=False), "", "k: '' is not valid; valid: non-empty text"),
    (Str(max_len=3), "abcd", "k: 'abcd' is not valid; valid: text (at most 3 characters)"),
    (
        EnvName(),
        "A-B",
        "k: 'A-B' is not valid; valid: an environment variable name (letters, digits, '_')",
    ),
    (Choice("gzip", ("gzip", "zstd")), "lz4", "k: 'lz4' is not valid; valid: gzip, zstd"),
    (Bool(False), "yes", "k: 'yes' is not valid; valid: true or false"),
    (Int(0, minimum=0, maximum=19), 20, "k: 20 is not valid; valid: an integer from 0 to 19"),
    (Int(0), True, "k: True is not valid; valid: an integer"),
    (Int(0), 1.5, "k: 1.5 is not valid; valid: an integer"),
    (Port(1), 0, "k: 0 is not valid; valid: a port number (1-65535)"),
    (Float(1.0, above=0), 0, "k: 0 is not valid; valid: a number > 0"),
    (Float(1.0, above=0), float("nan"), "k: nan is not valid; valid: a number > 0"),
    (
        Duration("10m", min_seconds=60),
        "30s",
        "k: '30s' is not valid; valid: a duration like 90s, 10m or 1h30m, at least 60s",
    ),
    (
        Duration("10m"),
        "10 minutes",
        "k: '10 minutes' is not valid; valid: a duration like 90s, 10m or 1h30m, at least 1s",
    ),
    (List([], min_items=1), [], "k: [] is not valid; valid: a list (at least 1) of text"),
    (List([]), "a", "k: 'a' is not valid; valid: a list of text"),
    (List([], Int(0)), [1, "x"], "k.1: 'x' is not valid; valid: an integer"),
    (
        Map(Int(0), key_pattern=r"^[a-z]+$", key_desc="lowercase"),
        {"A": 1},
        "k: 'A' is not valid; valid: a key that is lowercase",
    ),
    (Section({"a": Int(0)}), {"b": 1}, "k.b: unknown key; valid keys: a"),
    (Section({"a": Int(0)}), [1], "k: [1] is not valid; valid: a mapping with keys a"),
]


@pytest.mark.parametrize(
    "kind,value,message", BAD, ids=[m.split(": ", 1)[1][:30] for _, _, m in BAD]
)
def test_bad_values_are_one_line_naming_key_value_and_what_is_valid(
    kind: object, value: object, message: str
) -> None:
    with pytest.raises(ConfigError) as failed:
        kind.check(value, Where("k"))  # type: ignore[attr-defined]
    assert failed.value.message == message


@pytest.mark.parametrize(
    "kind,text,typed",
    [
        (Bool(False), "Yes", True),
        (Bool(True), "off", False),
        (Int(0), " 42 ", 42),
        (Float(0.0), "2.5", 2.5),
        (List([]), "a, b", ("a", "b")),
        (List([], Int(0)), "[1, 2]", (1, 2)),
        (List([]), "", ()),
    ],
)
def test_text_from_flags_and_variables_parses(kind: object, text: str, typed: object) -> None:
    assert kind.parse(text, Where("--x")) == typed  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "kind,text,message",
    [
        (
            Bool(False),
            "maybe",
            "--x: 'maybe' is not valid; valid: one of true, yes, on, 1, false, no, off, 0",
        ),
        (Int(0), "0x1f", "--x: '0x1f' is not valid; valid: an integer"),
        (Int(0), "1e3", "--x: '1e3' is not valid; valid: an integer"),
        (Float(0.0), "soon", "--x: 'soon' is not valid; valid: a number"),
        (
            List([], Int(0)),
            "[1,",
            "--x: '[1,' is not valid; valid: a list of an integer (a JSON list, or a,b,c)",
        ),
    ],
)
def test_bad_text_is_one_line(kind: object, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as failed:
        kind.parse(text, Where("--x"))  # type: ignore[attr-defined]
    assert failed.value.message == message


def test_paths_resolve_against_the_project_root_and_check_their_kind(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    where = Where("k", root=tmp_path)
    assert FilePath("x", kind="dir").check("sub/dir", where) == tmp_path / "sub" / "dir"
    assert FilePath("", empty=True).check("", where) is None
    with pytest.raises(ConfigError, match=r"is a directory$"):
        FilePath("x", kind="file").check(".", where)
    with pytest.raises(ConfigError, match=r"afile is not a directory$"):
        FilePath("x", kind="dir").check("afile", where)
    with pytest.raises(ConfigError, match=r"does not exist$"):
        FilePath("x", must_exist=True).check("missing", where)


def test_section_checks_defaults_and_cross_key_rules() -> None:
    def rule(settings: Settings, where: Where) -> None:
        if settings.low > settings.high:
            raise ConfigError(f"{where.name}: low must not exceed high")

    schema = Section({"low": Int(1), "high": Int(5)}, check_all=rule)
    assert schema.defaults() == {"low": 1, "high": 5}
    settings = schema.check({"low": 2}, Where("r"))
    assert (settings.low, settings.high) == (2, 5)
    with pytest.raises(TypeError):
        settings["low"] = 3  # type: ignore[index]
    with pytest.raises(ConfigError, match="^r: low must not exceed high$"):
        schema.check({"low": 9}, Where("r"))


def test_flag_converts_by_schema_key_or_kind_and_keeps_none() -> None:
    assert flag("backup.level", "9", "--level") == 9
    assert flag(Int(0), None, "--level") is None
    with pytest.raises(
        ConfigError, match=r"^--level: 'x' is not valid; valid: an integer from 0 to 19$"
    ):
        flag("backup.level", "x", "--level")


def test_secret_variables_come_from_the_schema(project_config: object) -> None:
    from tasks.core.settings import secret_env_names

    names = secret_env_names(project_config)
    assert {"FLOWLET_DB_PASSWORD", "GRAFANA_ADMIN_PASSWORD"} <= names
