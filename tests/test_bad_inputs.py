"""The bad-input corpus (tests/badinput/): every case fails with one line, never a traceback."""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO, ROOT_NS, need, run_inv, run_task

import tests.badinput as corpus
from tests.badinput import Case


def _cases() -> list[Case]:
    cases = []
    for info in pkgutil.iter_modules(corpus.__path__):
        module = importlib.import_module(f"tests.badinput.{info.name}")
        cases.extend(module.CASES)
    return cases


CASES = _cases()


def _merge(base: dict, extra: dict) -> dict:  # type: ignore[type-arg]
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def _config_file(case: Case, tmp_path: Path) -> Path:
    """The case's config: merged over the project's invoke.yaml when it is a mapping."""
    path = tmp_path / "case.yaml"
    assert case.config is not None
    try:
        extra = yaml.safe_load(case.config)
    except yaml.YAMLError:
        extra = None
    if isinstance(extra, dict):
        project = yaml.safe_load((REPO / "invoke.yaml").read_text())
        path.write_text(yaml.safe_dump(_merge(project, extra)))
    else:
        path.write_text(case.config)
    return path


def _scratch_project(case: Case, tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("tasks.py", "tasks", "kubernetes", "examples"):
        os.symlink(REPO / name, project / name)
    assert case.project_yaml is not None
    (project / "invoke.yaml").write_text(case.project_yaml)
    return project


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 150, f"the corpus has {len(CASES)} cases; keep at least 150"
    names = [c.name for c in CASES]
    repeated = sorted({name for name in names if names.count(name) > 1})
    assert not repeated, f"case ids must be unique: {repeated}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    need(*case.needs)
    if case.project_yaml is not None:
        result = run_inv(list(case.argv), cwd=_scratch_project(case, tmp_path), env=case.env)
        code, out, err = result.returncode, result.stdout, result.stderr
    else:
        for key, value in case.env.items():
            monkeypatch.setenv(key, value)
        config = _config_file(case, tmp_path) if case.config is not None else None
        code = run_task(ROOT_NS, list(case.argv), config_file=config, cwd=REPO)
        out, err = capfd.readouterr()
    assert "Traceback" not in out + err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    assert re.search(case.expect, lines[0]), f"{lines[0]!r} does not match {case.expect!r}"
    assert code != 0, "bad input must not exit 0"
    if case.code is not None:
        assert code == case.code
