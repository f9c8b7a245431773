"""Uploads in progress and transcoded media assets."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from server.core.ids import new_id

INDEXES = {
    "uploads": [IndexModel([("created_ms", DESCENDING)], name="recent")],
    "media_assets": [IndexModel([("content_id", ASCENDING), ("status", ASCENDING)], name="by_content")],
}


class MediaRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._uploads = db.uploads
        self._assets = db.media_assets

    # --- uploads --------------------------------------------------------------------

    async def create_upload(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc = {"_id": new_id(), **doc}
        await self._uploads.insert_one(doc)
        return doc

    async def upload(self, upload_id: str) -> dict[str, Any] | None:
        return await self._uploads.find_one({"_id": upload_id})

    async def advance_upload(self, upload_id: str, expected_offset: int, new_offset: int, at_ms: int) -> bool:
        """Compare-and-set on the offset, so two writers of one upload cannot interleave."""
        result = await self._uploads.update_one(
            {"_id": upload_id, "offset": expected_offset, "status": "uploading"},
            {"$set": {"offset": new_offset, "updated_ms": at_ms}},
        )
        return result.modified_count == 1

    async def set_upload(self, upload_id: str, changes: dict[str, Any], *, expect_status: str | None = None) -> bool:
        query: dict[str, Any] = {"_id": upload_id}
        if expect_status is not None:
            query["status"] = expect_status
        return (await self._uploads.update_one(query, {"$set": changes})).modified_count == 1

    # --- assets ---------------------------------------------------------------------

    async def asset(self, asset_id: str) -> dict[str, Any] | None:
        return await self._assets.find_one({"_id": asset_id})

    async def put_asset(self, doc: dict[str, Any]) -> None:
        await self._assets.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def publish_version(self, asset_id: str, version: int, renditions: list[dict[str, Any]],
                              duration: float, at_ms: int) -> bool:
        """The one write that makes an asset playable, after every file is stored."""
        result = await self._assets.update_one(
            {"_id": asset_id},
            {"$set": {"status": "ready", "version": version, "renditions": renditions, "duration": duration,
                      "ready_ms": at_ms}},
        )
        return result.matched_count == 1

    async def set_renditions(self, asset_id: str, version: int, renditions: list[dict[str, Any]]) -> bool:
        """Measurements added to a published version; never to one that has been replaced."""
        result = await self._assets.update_one(
            {"_id": asset_id, "status": "ready", "version": version}, {"$set": {"renditions": renditions}},
        )
        return result.matched_count == 1

    async def add_content(self, asset_id: str, content_id: str) -> None:
        """One asset for several contents: `content_id` becomes a list, which the equality
        query in `ready_for_content` matches element-wise."""
        asset = await self.asset(asset_id)
        if asset is None:
            return
        ids = asset["content_id"] if isinstance(asset["content_id"], list) else [asset["content_id"]]
        if content_id not in ids:
            await self._assets.update_one({"_id": asset_id}, {"$set": {"content_id": [*ids, content_id]}})

    async def ready_for_content(self, content_id: str) -> dict[str, Any] | None:
        cursor = self._assets.find({"content_id": content_id, "status": "ready"}).sort("ready_ms", DESCENDING)
        docs = [d async for d in cursor.limit(1)]
        return docs[0] if docs else None
