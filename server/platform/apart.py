"""Run a CPU-heavy function in a process of its own, awaited without blocking the loop.

A serving process's event loop must never be held for long: a recommendation run over a
million history rows is minutes of pure-Python CPU, and run on the loop, or in a thread
(the GIL), it would stall or slow every request and socket of the process. A fresh
spawned process per run keeps that CPU off the loop and gives its memory back when it
ends; cancelling the awaiting task terminates the child, so a stopping server never
waits for a run to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

T = TypeVar("T")

STOP_WAIT_S = 5.0


class ApartFailed(RuntimeError):
    """The function raised in the child, or the child died before answering."""


def _child(send: Connection, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        result: tuple[bool, Any] = (True, fn(*args))
    except BaseException as exc:  # reported to the parent, which raises it there
        result = (False, f"{type(exc).__name__}: {exc}")
    send.send(result)
    send.close()


async def run_apart(fn: Callable[..., T], *args: Any, name: str) -> T:
    """`fn(*args)` in a new spawned process (a clean interpreter: no copy of the parent's
    sockets, locks or loop, as a fork would give); `fn` and its arguments must pickle."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, fn, args), name=name, daemon=True)
    loop = asyncio.get_running_loop()
    try:
        proc.start()
        send.close()  # the child's end: EOF here once the child exits without answering
        answered: asyncio.Future[None] = loop.create_future()
        loop.add_reader(receive.fileno(), lambda: answered.done() or answered.set_result(None))
        try:
            await answered
        finally:
            loop.remove_reader(receive.fileno())
        try:
            ok, value = receive.recv()
        except EOFError:
            await loop.run_in_executor(None, proc.join, STOP_WAIT_S)
            raise ApartFailed(f"{name} exited with code {proc.exitcode} before answering") from None
        if not ok:
            raise ApartFailed(f"{name} failed: {value}")
        return value  # type: ignore[no-any-return]
    finally:
        receive.close()
        if proc.is_alive():
            proc.terminate()
        if proc.pid is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(loop.run_in_executor(None, proc.join, STOP_WAIT_S))
