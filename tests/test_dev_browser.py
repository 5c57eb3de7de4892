"""The example app end to end in a real browser: headless Debian Chromium driven by
playwright-core (tests/browser/, installed by .ci/install) against the stack dev.start runs.

Through the page only: create two accounts and two transactions, see the new balances
rendered (exact, from integer cents), see the API's refusal shown, reload and see them kept.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from conftest import need
from fixtures_dev import DevProject

pytestmark = pytest.mark.slow

BROWSER = Path(__file__).resolve().parent / "browser"


def test_create_an_account_and_a_transaction_in_chromium(
    stack_project: DevProject, tmp_path: Path
) -> None:
    need("chromium", "node", str(BROWSER / "node_modules" / ".bin" / "playwright-core"))
    project = stack_project
    started = project.inv("dev.start", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    shot = tmp_path / "ledger.png"
    result = subprocess.run(
        ["node", str(BROWSER / "ledger.mjs"), project.url("frontend"), str(shot)],
        cwd=BROWSER,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    alice, bob = seen["names"]["alice"], seen["names"]["bob"]
    assert seen["heading"] == "Flowlet ledger"
    assert seen["created"] == {alice: "0.00", bob: "0.00"}
    assert seen["balances"] == {alice: "124.75", bob: "0.75"}
    assert re.fullmatch(
        r"amount: 5\.00 is more than the balance of account \d+ \(0\.75\)", seen["error"]
    )
    assert seen["afterError"] == {bob: "0.75"}
    assert seen["reloaded"] == {alice: "124.75", bob: "0.75"}
    # the only console errors: the refused transaction's 409
    assert [m for m in seen["console"] if "409" not in m] == [], seen["console"]
    assert shot.stat().st_size > 1000
    assert project.inv("dev.stop").returncode == 0
