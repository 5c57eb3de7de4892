"""The order of the stack: each process starts after those it names in ``after``, and stops
before them (in waves: processes that do not need one another stop together)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tasks.dev.plan import Stack


def with_dependencies(stack: Stack, names: Iterable[str]) -> list[str]:
    """``names`` and every process they need (``after``, transitively), in stack order."""
    wanted: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(stack.spec(name).after)
    return [n for n in start_order(stack) if n in wanted]


def start_order(stack: Stack) -> list[str]:
    """Every process after those it names in ``after`` (stable: config order otherwise)."""
    done: list[str] = []
    pending = list(stack.processes)
    while pending:
        for spec in pending:
            if all(dep in done for dep in spec.after):
                done.append(spec.name)
                pending.remove(spec)
                break
        else:  # the schema refuses cycles; keep the rest in config order
            done.extend(s.name for s in pending)
            break
    return done


def stop_order(stack: Stack, names: Sequence[str]) -> list[str]:
    """``names`` with dependents first (the reverse of the start order)."""
    return [n for w in stop_waves(stack, names) for n in w]


def stop_waves(stack: Stack, names: Sequence[str]) -> list[list[str]]:
    """``names`` in waves that stop together: each after every process that needs it
    (frontend and backend, then db). Names not in the config stop in the first wave."""
    known = set(stack.names())
    waves = [[n for n in names if n not in known]]
    left = [n for n in reversed(start_order(stack)) if n in names]
    while left:
        wave = [n for n in left if not any(n in stack.spec(m).after for m in left)]
        wave = wave or left[:1]
        waves.append(wave)
        left = [n for n in left if n not in wave]
    return [w for w in waves if w]
