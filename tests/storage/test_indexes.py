"""Every index a storage module declares exists once the app has started: the wiring
records a repository's indexes when it builds the repository, so none can be forgotten."""

from __future__ import annotations

import importlib
import pkgutil

import storage


def declared_indexes() -> dict[str, set[tuple[str, ...]]]:
    """Each collection's declared indexes by their fields: nx-27017 reports names of its own
    and every direction as 1 (docs/storage-compat.md, rule 11)."""
    declared: dict[str, set[tuple[str, ...]]] = {}
    for info in pkgutil.walk_packages(storage.__path__, "storage."):
        module = importlib.import_module(info.name)
        for collection, indexes in getattr(module, "INDEXES", {}).items():
            declared.setdefault(collection, set()).update(tuple(index.document["key"]) for index in indexes)
    return declared


async def test_every_declared_index_is_created_at_start(server) -> None:
    declared = declared_indexes()
    assert len(declared) >= 20, declared  # the walk found the repositories
    db = server.platform.db
    for collection, keys in declared.items():
        present = {tuple(index["key"]) async for index in await db[collection].list_indexes()}
        assert keys <= present, f"{collection}: missing {sorted(keys - present)}"


async def test_the_wiring_built_every_repository_that_declares_indexes(server) -> None:
    assert set(server.runtime.product.index_specs) == set(declared_indexes())
