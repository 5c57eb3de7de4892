"""The command runner and the strict mock context the task tests rely on."""

from __future__ import annotations

import re

import pytest
from invoke import Config, Result
from invoke.exceptions import UnexpectedExit

from tasks.core.errors import OpsError
from tasks.core.prompt import choice, confirm
from tasks.core.runner import probe, render, run


def test_render_quotes_every_argument() -> None:
    assert render(["echo", "a b", "$HOME", "it's"]) == "echo 'a b' '$HOME' 'it'\"'\"'s'"


def test_strict_context_raises_on_failure_unless_warn(strict_context: type) -> None:
    c = strict_context(config=Config(), run={"false": Result(exited=3)})
    with pytest.raises(UnexpectedExit) as err:
        run(c, ["false"])
    assert err.value.result.exited == 3
    assert run(c, ["false"], warn=True).exited == 3
    assert c.commands == ["false", "false"]


def test_strict_context_regex_and_sequences(strict_context: type) -> None:
    c = strict_context(
        config=Config(), run={re.compile(r"helm status .*"): ["pending", "deployed"]}
    )
    assert run(c, ["helm", "status", "x"]).stdout == "pending"
    assert run(c, ["helm", "status", "x"]).stdout == "deployed"
    assert run(c, ["helm", "status", "x"]).stdout == "deployed"


def test_strict_context_rejects_unexpected_commands(strict_context: type) -> None:
    c = strict_context(config=Config(), run={})
    with pytest.raises(NotImplementedError, match="unexpected command: rm -rf /"):
        run(c, ["rm", "-rf", "/"])


def test_dry_prints_changes_but_probes_still_run(strict_context: type) -> None:
    config = Config(overrides={"run": {"dry": True}})
    c = strict_context(config=config, run={"helm version": "v4.1.4"})
    assert run(c, ["helm", "upgrade", "x"]).stdout == ""
    assert probe(c, ["helm", "version"]).stdout == "v4.1.4"
    assert c.commands == ["helm upgrade x", "helm version"]


def test_confirm_refuses_without_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(OpsError) as err:
        confirm("Deploy to production?", yes=False)
    assert err.value.message == (
        "Deploy to production? -- refusing: no terminal to confirm on; pass --yes to proceed"
    )
    confirm("Deploy to production?", yes=True)


def test_choice_names_flag_value_and_valid() -> None:
    with pytest.raises(OpsError) as err:
        choice("lz4", ("gzip", "zstd", "none"), flag="--compress")
    assert err.value.message == "--compress: 'lz4' is not valid; valid: gzip, zstd, none"


def test_private_temp_file_is_0600_and_always_removed() -> None:
    import os
    import stat

    from tasks.core.secrets import private_temp_file

    with pytest.raises(RuntimeError):
        with private_temp_file("TOKEN=s3cret\n", prefix="flowlet-test-") as path:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            with open(path, encoding="utf-8") as handle:
                assert handle.read() == "TOKEN=s3cret\n"
            raise RuntimeError("the command failed")
    assert not os.path.exists(path)
