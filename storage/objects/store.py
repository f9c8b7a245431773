"""Where media files live: one interface, local disk by default (Google Cloud Storage
when configured). Keys are relative, immutable per asset version, and never built from
a client-supplied name."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path
from typing import Protocol

_KEY = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*$")


class BadKey(ValueError):
    pass


def check_key(key: str) -> str:
    """Keys are made by us, but every entry point checks them anyway (defence in depth)."""
    if not _KEY.match(key) or any(not part.strip(".") for part in key.split("/")):
        raise BadKey(key)  # no ".", "..", "..." segments: one spelling per file
    return key


class MediaStore(Protocol):
    async def put_file(self, local: Path, key: str, content_type: str) -> None: ...

    async def read(self, key: str) -> bytes: ...

    async def exists(self, key: str) -> bool: ...

    async def delete_prefix(self, prefix: str) -> None: ...

    def local_path(self, key: str) -> Path | None:
        """The file on this machine, when the store is local disk (served by the app)."""
        ...


class LocalMediaStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def local_path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise BadKey(key)
        return path

    async def put_file(self, local: Path, key: str, content_type: str) -> None:
        target = self.local_path(key)

        def copy() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            shutil.copyfile(local, tmp)
            os.replace(tmp, target)  # readers never see a half-written file

        await asyncio.to_thread(copy)

    async def read(self, key: str) -> bytes:
        return await asyncio.to_thread(self.local_path(key).read_bytes)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.local_path(key).is_file)

    async def delete_prefix(self, prefix: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self.local_path(prefix.rstrip("/")), True)
