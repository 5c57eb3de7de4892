"""Running the planned chains in parallel and reporting them.

Chains run on a thread pool bounded by ``jobs``; the steps of one chain run one after another
(fixers that write the same files). Each step's output is captured and printed as one block
when it ends (under a lock, so blocks never interleave); the summary table comes last.
Ctrl-C terminates the running tools and exits 130.
"""

from __future__ import annotations

import subprocess  # nosec B404  # argv lists only, never a shell
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TextIO

from tasks.core.errors import OpsError

from tasks.lint.tools import ERROR, FINDINGS, OK, Step, classify, fix_hint


@dataclass(frozen=True)
class Outcome:
    step: Step
    returncode: int | None  # None: could not start (missing binary)
    seconds: float
    stdout: str
    stderr: str
    result: str


class Executor:
    """Runs chains of steps; knows the running processes so Ctrl-C can stop them."""

    def __init__(self, jobs: int, out: TextIO | None = None) -> None:
        self.jobs = max(1, jobs)
        self.out = out if out is not None else sys.stdout
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._stopping = False

    def run_step(self, step: Step) -> Outcome:
        if not step.files and step.cached:
            return Outcome(step, 0, 0.0, "", "", OK)  # every file known clean
        start = time.perf_counter()
        try:
            with self._lock:
                if self._stopping:
                    raise KeyboardInterrupt
                proc = subprocess.Popen(  # nosec B603  # argv list built by tools.plan_*
                    step.argv,
                    cwd=step.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
                self._procs.add(proc)
        except OSError as exc:
            seconds = time.perf_counter() - start
            message = f"{step.tool.name}: cannot run {step.argv[0]}: {exc.strerror or exc}\n"
            return Outcome(step, None, seconds, "", message, ERROR)
        try:
            raw_out, raw_err = proc.communicate()
        finally:
            with self._lock:
                self._procs.discard(proc)
        seconds = time.perf_counter() - start
        stdout = raw_out.decode("utf-8", "replace")
        stderr = raw_err.decode("utf-8", "replace")
        result = classify(step.tool, proc.returncode, stderr)
        if proc.returncode is not None and proc.returncode < 0:
            stderr += f"{step.tool.name}: killed by signal {-proc.returncode}\n"
        return Outcome(step, proc.returncode, seconds, stdout, stderr, result)

    def run_chain(self, chain: Sequence[Step]) -> list[Outcome]:
        outcomes = []
        for step in chain:
            outcome = self.run_step(step)
            self.print_block(outcome)
            outcomes.append(outcome)
            if outcome.result == ERROR:
                break  # the next fixer of these files would work on a half-done state
        return outcomes

    def print_block(self, outcome: Outcome) -> None:
        """One tool's output, as one write."""
        step = outcome.step
        n = len(step.files)
        cached = f" (+{step.cached} cached)" if step.cached else ""
        counts = (
            f"{n} file{'' if n == 1 else 's'}{cached}, {outcome.result}, {outcome.seconds:.2f}s"
        )
        head = f"── {step.label}: {counts} ──"
        body = (outcome.stdout + outcome.stderr).rstrip("\n")
        block = head + "\n" + (body + "\n" if body else "")
        with self._lock:
            self.out.write(block)
            self.out.flush()

    def run(self, chains: Sequence[Sequence[Step]]) -> list[Outcome]:
        """All chains, at most ``jobs`` at a time; outcomes in plan order."""
        pool = ThreadPoolExecutor(max_workers=min(self.jobs, max(1, len(chains))))
        try:
            futures = [pool.submit(self.run_chain, chain) for chain in chains]
            results = [f.result() for f in futures]
        except KeyboardInterrupt:
            self.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            raise OpsError("lint: interrupted", code=130)
        pool.shutdown(wait=True)
        return [outcome for chain in results for outcome in chain]

    def running(self) -> int:
        """How many tool processes are running now."""
        with self._lock:
            return len(self._procs)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            procs = list(self._procs)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


def summary(outcomes: Sequence[Outcome], fix_command: str) -> str:
    """The table: tool, files checked, seconds, result, fix command."""
    rows = [("tool", "files", "seconds", "result", "fix")]
    for o in outcomes:
        result = o.result if o.result != ERROR else f"error (exit {o.returncode})"
        if o.returncode is None:
            result = "error (not run)"
        if o.step.mode == "fix" and o.result != ERROR:
            result, hint = "ran", ""
        else:
            hint = fix_hint(o.step.tool, o.result, fix_command)
        if o.step.cached:
            result += f" (+{o.step.cached} cached)"
        rows.append((o.step.label, str(len(o.step.files)), f"{o.seconds:.2f}", result, hint))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        cells = [
            row[0].ljust(widths[0]),
            row[1].rjust(widths[1]),
            row[2].rjust(widths[2]),
            row[3].ljust(widths[3]),
            row[4],
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def exit_code(outcomes: Sequence[Outcome]) -> int:
    """0 clean, 1 findings, 2 if any tool crashed (crashes win: they hide findings)."""
    results = {o.result for o in outcomes}
    if ERROR in results:
        return 2
    if FINDINGS in results:
        return 1
    assert results <= {OK}  # nosec B101  # the three results are exhaustive
    return 0
