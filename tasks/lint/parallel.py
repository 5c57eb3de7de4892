"""Running the planned chains in parallel, through :func:`tasks.core.runner.spawn`.

Chains run on a thread pool bounded by ``jobs``; the steps of one chain run one after another
(fixers that write the same files). A check step runs its tool only on the files the result
cache does not know; the tool's output is split per file (:mod:`tasks.lint.findings`) and the
step's block is printed, in plan order, as soon as it and the blocks before it are done (so
the output is the same on every run). Each tool runs in its own process group: on Ctrl-C (or
SIGTERM/SIGHUP) every running tool gets that signal once, we wait for them, and the interrupt
goes on to the boundary (exit 130/143/129).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from subprocess import PIPE, Popen  # nosec B404  # constants and types: children via runner
from typing import Any, TextIO

from tasks.core import runner
from tasks.core.errors import OpsError
from tasks.lint import findings
from tasks.lint.cache import ResultCache
from tasks.lint.findings import FileResult
from tasks.lint.plan import Outcome, Step
from tasks.lint.tools import ERROR, FINDINGS, OK, classify


def merge(
    step: Step, results: dict[str, FileResult], other: Sequence[str]
) -> tuple[str, list[str]]:
    """The step's result and block body from per-file results, in display order."""
    status = OK
    body: list[str] = []
    for display, name in sorted(zip(step.display, step.files)):
        result = results.get(name, FileResult(OK))
        body.extend(findings.render(result, display))
        if result.status == ERROR or (result.status == FINDINGS and status == OK):
            status = result.status
    body.extend(other)
    return status, body


class Executor:
    """Runs chains of steps; knows the running processes so an interrupt can stop them."""

    def __init__(self, jobs: int, cache: ResultCache | None = None, out: TextIO | None = None):
        self.jobs = max(1, jobs)
        self.cache = cache if cache is not None else ResultCache(None)
        self.out = out if out is not None else sys.stdout
        self._lock = threading.Lock()
        self._procs: set[Popen[bytes]] = set()
        self._stopping = False
        self._blocks: dict[int, str] = {}
        self._printed = 0

    def _spawn(self, step: Step, files: Sequence[str]) -> tuple[int | None, str, str]:
        with self._lock:
            if self._stopping:
                raise KeyboardInterrupt
            try:
                proc = runner.spawn(step.argv(files), cwd=step.cwd, stdout=PIPE, stderr=PIPE)
            except OpsError as exc:
                return None, "", f"{step.tool.name}: {exc.message}"
            self._procs.add(proc)
        try:
            raw_out, raw_err = proc.communicate()
        finally:
            with self._lock:
                self._procs.discard(proc)
        stderr = raw_err.decode("utf-8", "replace")
        if proc.returncode < 0:
            stderr += f"{step.tool.name}: killed by signal {-proc.returncode}\n"
        return proc.returncode, raw_out.decode("utf-8", "replace"), stderr

    def run_step(self, step: Step) -> Outcome:
        return self._fix(step) if step.mode == "fix" else self._check(step)

    def _fix(self, step: Step) -> Outcome:
        """A fixer: its output is shown only when it crashed (the re-check tells the rest)."""
        start = time.perf_counter()
        code, stdout, stderr = self._spawn(step, step.files)
        result = classify(step.tool, code, stderr)
        body = (stdout + stderr).rstrip("\n").splitlines() if result == ERROR else []
        detail = "not run" if code is None else f"exit {code}"
        return Outcome(step, code, time.perf_counter() - start, result, tuple(body), 0, detail)

    def _check(self, step: Step) -> Outcome:
        """A check: cached files from the cache, the others from the tool, split per file."""
        start = time.perf_counter()
        keys = self._keys(step)
        results = {n: r for n, k in keys.items() if (r := self.cache.get(k)) is not None}
        todo = [n for n in step.files if n not in results]
        code: int | None = None
        other: list[str] = []
        detail = ""
        if todo:
            code, stdout, stderr = self._spawn(step, todo)
            crashed = code is None or code < 0 or "Traceback (most recent call last)" in stderr
            parsed = None if crashed else findings.parse(
                step.tool.parser, todo, str(step.cwd), stdout, stderr
            )  # fmt: skip
            if parsed is not None and _consistent(step, code, stderr, parsed.files):
                results.update(parsed.files)
                other = parsed.other
                if not other:
                    self.cache.put({keys[n]: parsed.files[n] for n in todo})
            else:
                other = (stdout + stderr).rstrip("\n").splitlines() or [f"(no output; exit {code})"]
                results.update({n: FileResult(ERROR) for n in todo})
        status, body = merge(step, results, other)
        if status == ERROR and todo:
            detail = "not run" if code is None else "" if code in (0, 1) else f"exit {code}"
        cached = len(step.files) - len(todo)
        per_file = tuple(
            (display, results.get(name, FileResult(OK)))
            for display, name in sorted(zip(step.display, step.files))
        )
        return Outcome(
            step, code, time.perf_counter() - start, status, tuple(body), cached, detail,
            per_file, tuple(other),
        )  # fmt: skip

    def _print_ready(self, index: int, block: str) -> None:
        with self._lock:
            self._blocks[index] = block
            while self._printed in self._blocks:
                self.out.write(self._blocks.pop(self._printed))
                self._printed += 1
            self.out.flush()

    def run_chain(self, chain: Sequence[Step], first: int) -> list[Outcome]:
        outcomes = []
        for offset, step in enumerate(chain):
            outcome = self.run_step(step)
            outcomes.append(outcome)
            self._print_ready(first + offset, outcome.block)
            if outcome.result == ERROR:  # the next fixer would work on a half-done state
                for rest in range(offset + 1, len(chain)):
                    self._print_ready(first + rest, "")
                break
        return outcomes

    def run(self, chains: Sequence[Sequence[Step]]) -> list[Outcome]:
        """All chains, at most ``jobs`` at a time, the most work first (what the cache does
        not answer); blocks and outcomes in plan order."""
        self._blocks, self._printed = {}, 0
        firsts = [sum(len(c) for c in chains[:i]) for i in range(len(chains))]
        order = sorted(range(len(chains)), key=lambda i: -self._work(chains[i]))
        pool = ThreadPoolExecutor(max_workers=min(self.jobs, max(1, len(chains))))
        try:
            futures = {i: pool.submit(self.run_chain, chains[i], firsts[i]) for i in order}
            results = [futures[i].result() for i in range(len(chains))]
        except KeyboardInterrupt as exc:
            self.stop(int(getattr(exc, "signum", signal.SIGINT)))
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return [outcome for chain in results for outcome in chain]

    def _work(self, chain: Sequence[Step]) -> float:
        total = 0.0
        for step in chain:
            if step.mode == "check":
                keys = self._keys(step)
                todo = [n for n in step.files if self.cache.get(keys[n]) is None]
                total += step.estimate(todo) if todo else 0.0
            else:
                total += step.estimate()
        return total

    def _keys(self, step: Step) -> dict[str, str | None]:
        """The cache key of each file of ``step`` (None: no cache, or an unreadable file)."""
        cache = self.cache
        if not cache.enabled:
            return dict.fromkeys(step.files)
        fingerprint = cache.fingerprint(step.tool, step.argv(()), step.cwd, step.tree_root)
        return {name: cache.key(fingerprint, step.cwd, name) for name in step.files}

    def running(self) -> int:
        """How many tool processes are running now."""
        with self._lock:
            return len(self._procs)

    def stop(self, signum: int = signal.SIGINT) -> None:
        """Send ``signum`` once to every running tool's group; SIGKILL what is left after 5 s."""
        with self._lock:
            self._stopping = True
            procs = list(self._procs)
        for proc in procs:
            try:
                os.killpg(proc.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + 5.0
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except Exception:  # still running: no second polite signal, just stop it
                runner.stop_group(proc, grace=0.0)


def _consistent(step: Step, code: int | None, stderr: str, fresh: dict[str, Any]) -> bool:
    """The exit code agrees with what the output said (else: a crash or an unknown format)."""
    said = {r.status for r in fresh.values()}
    result = classify(step.tool, code, stderr)
    if result == FINDINGS:
        return bool(said & {FINDINGS, ERROR})
    if result == OK:
        return True
    return ERROR in said  # e.g. Black 123, Prettier 2 on a file it could not parse
