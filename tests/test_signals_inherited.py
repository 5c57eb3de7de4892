"""Tests that send signals must not depend on the dispositions the test run inherited.

A test run started as ``cmd &`` from a script (or by some CI runners) starts with SIGINT
ignored, which every child would inherit: tests that assumed the default disposition failed
there. This runs every ``@pytest.mark.signals`` test again in a pytest that starts with SIGINT
(and SIGHUP) ignored.
"""

from __future__ import annotations

import os
import signal
import subprocess  # nosec B404
import sys

import pytest
from conftest import REPO


def _ignore_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


@pytest.mark.slow
def test_signal_tests_pass_with_sigint_and_sighup_ignored() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(  # nosec B603
        [sys.executable, "-m", "pytest", "-q", "-m", "signals", "-p", "no:cacheprovider", "-x"],
        cwd=REPO,
        env=env,
        preexec_fn=_ignore_signals,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
    assert result.returncode == 0, tail
    assert " passed" in result.stdout and " deselected" in result.stdout, tail
