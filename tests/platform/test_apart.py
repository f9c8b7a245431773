"""Work run apart: in another process, its result or its failure reported, and the child
ended when the waiting task is cancelled."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time

import pytest

from server.platform.apart import ApartFailed, run_apart

pytestmark = pytest.mark.asyncio


async def test_the_function_runs_in_another_process_and_its_result_comes_back() -> None:
    assert await run_apart(os.getpid, name="nameless-test") != os.getpid()
    assert await run_apart(sum, [1, 2, 3], name="nameless-test") == 6


async def test_an_exception_in_the_child_is_raised_here() -> None:
    with pytest.raises(ApartFailed, match="ValueError"):
        await run_apart(int, "not a number", name="nameless-test")


async def test_a_child_that_dies_without_answering_is_reported() -> None:
    with pytest.raises(ApartFailed, match="exited with code"):
        await run_apart(os._exit, 3, name="nameless-test")


async def test_cancelling_the_wait_ends_the_child() -> None:
    task = asyncio.ensure_future(run_apart(time.sleep, 600, name="nameless-sleeper"))

    def sleepers() -> list[multiprocessing.Process]:
        return [p for p in multiprocessing.active_children() if p.name == "nameless-sleeper"]

    while not sleepers():
        await asyncio.sleep(0.01)
    child = sleepers()[0]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not child.is_alive()
    assert child.exitcode is not None and child.exitcode < 0  # terminated by a signal
