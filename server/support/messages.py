"""The support message log: group commit of concurrent sends.

Every send waits for its own insert before it is acknowledged, but the sends that arrive
while one batch is being written go out together in the next one (`insert_many`), so the
database sees one round trip per batch instead of one per message, and a quiet
conversation pays no timer. A batch holds at most one message per conversation: numbers
are taken from this process's memory of the last one, and if another process took a
number meanwhile the unique `(conversation_id, seq)` index stops the insert and the
message goes into the next batch with a fresh number. A client id stored before (by a
retry, on any process, or earlier in the same burst) answers with the first message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from server.core import errors
from storage.support.conversations import ConversationRepository

log = logging.getLogger("nameless.support")

MAX_BATCH = 500
MAX_ATTEMPTS = 20  # numbers lost to other writers before a send gives up (conversation_busy)
MAX_REMEMBERED = 100_000  # conversations whose next number this process keeps


@dataclass
class _Entry:
    doc: dict[str, Any]
    done: asyncio.Future[tuple[dict[str, Any], bool]]
    attempts: int = field(default=0)


class MessageLog:
    def __init__(self, conversations: ConversationRepository, max_batch: int = MAX_BATCH) -> None:
        self._conversations = conversations
        self._max_batch = max_batch
        self._pending: list[_Entry] = []
        self._next_seq: dict[str, int] = {}
        self._writer: asyncio.Task[None] | None = None

    async def append(self, doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Store `doc` (without its `seq`) and answer `(stored, duplicate)` once it is
        durable: the stored message with its number, or the one stored first under the
        same client id."""
        entry = _Entry(doc, asyncio.get_running_loop().create_future())
        self._pending.append(entry)
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._drain())
        return await entry.done

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, rest, taken = [], [], set()
                for entry in self._pending:
                    if entry.done.done():  # the sender went away before it was written
                        continue
                    conversation_id = entry.doc["conversation_id"]
                    if conversation_id in taken or len(batch) >= self._max_batch:
                        rest.append(entry)
                    else:
                        taken.add(conversation_id)
                        batch.append(entry)
                self._pending = rest
                if batch:
                    try:
                        await self._write(batch)
                    except Exception as exc:
                        log.warning("support messages: a batch of %d failed: %s", len(batch), type(exc).__name__)
                        for entry in batch:
                            if not entry.done.done():
                                entry.done.set_exception(exc)
        except asyncio.CancelledError:
            for entry in self._pending:
                if not entry.done.done():
                    entry.done.set_exception(errors.ServiceUnavailable("The server is stopping; send again."))
            self._pending = []
            raise
        finally:
            self._writer = None

    async def _write(self, batch: list[_Entry]) -> None:
        unknown = [e.doc["conversation_id"] for e in batch if e.doc["conversation_id"] not in self._next_seq]
        if unknown:
            latest = await self._conversations.last_seqs(unknown)
            for conversation_id, seq in latest.items():
                self._next_seq[conversation_id] = seq + 1
        docs = [{**e.doc, "seq": self._next_seq[e.doc["conversation_id"]]} for e in batch]
        stopped = await self._conversations.insert_messages(docs)
        if len(self._next_seq) > MAX_REMEMBERED:
            self._next_seq.clear()
        retry = []
        for i, (entry, doc) in enumerate(zip(batch, docs, strict=True)):
            conversation_id = doc["conversation_id"]
            if i not in stopped:
                self._next_seq[conversation_id] = doc["seq"] + 1
                if not entry.done.done():
                    entry.done.set_result((doc, False))
                continue
            self._next_seq.pop(conversation_id, None)
            earlier = await self._conversations.message_by_client_id(conversation_id, doc["client_id"])
            if earlier is not None:
                if not entry.done.done():
                    entry.done.set_result((earlier, True))
            elif entry.attempts + 1 >= MAX_ATTEMPTS:
                if not entry.done.done():
                    entry.done.set_exception(errors.Conflict("The conversation is busy; send again.",
                                                             code="conversation_busy"))
            else:
                entry.attempts += 1
                retry.append(entry)
        self._pending[:0] = retry
