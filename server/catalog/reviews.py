"""Reviews: one per profile and title, a rating from 1 to 5 and a short text.

The title's rating is kept as a sum and a count changed with `$inc` by each review's
creation, edit, moderation or deletion, never recomputed from a read of the reviews, so
concurrent reviewers all count. Each change to a review is conditional on the value it
replaces, so the matching `$inc` happens exactly once.

Authors (the account that owns the profile) edit and delete their own reviews; content
managers moderate (hide, show, delete) anyone's, and that is audited. Someone else's
review is a 404 to everyone else. Text is stored as given and returned as JSON data; it
is never rendered here, so it is never treated as HTML.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from server.catalog.browse import CatalogService
from server.catalog.cards import rating_view
from server.catalog.viewers import Viewer
from server.core import errors
from server.core.clock import iso, now, to_ms
from server.core.permissions import Principal
from server.staff.audit import AuditLog
from storage.catalog.reviews import ReviewExists, ReviewRepository
from storage.catalog.titles import TitleRepository

MAX_TEXT = 2000
MODERATE = "reviews.moderate"


def review_view(doc: dict[str, Any], user_id: str | None) -> dict[str, Any]:
    return {
        "id": str(doc["_id"]),
        "title_id": doc["title_id"],
        "rating": doc["rating"],
        "text": doc.get("text", ""),
        "author": {"name": doc.get("author_name", "")},
        "mine": user_id is not None and doc.get("user_id") == user_id,
        "status": doc.get("status", "visible"),
        "created_at": iso(doc["created_at"]),
        "edited_at": iso(doc["edited_ms"]) if doc.get("edited_ms") else None,
    }


class ReviewService:
    def __init__(self, reviews: ReviewRepository, titles: TitleRepository, catalog: CatalogService,
                 audit: AuditLog, clock: Callable[[], dt.datetime] = now) -> None:
        self._reviews = reviews
        self._titles = titles
        self._catalog = catalog
        self._audit = audit
        self._clock = clock

    async def list(self, viewer: Viewer, title_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
        title = await self._catalog.visible_title(viewer, title_id)
        page = await self._reviews.page(str(title["_id"]), limit, cursor)
        return {"items": [review_view(d, viewer.user_id) for d in page.items], "next_cursor": page.next_cursor,
                "rating": rating_view(title)}

    async def create(self, viewer: Viewer, title_id: str, rating: int, text: str) -> dict[str, Any]:
        title = await self._catalog.visible_title(viewer, title_id)
        at = self._clock()
        try:
            doc = await self._reviews.insert({
                "title_id": str(title["_id"]), "profile_id": viewer.profile_id, "user_id": viewer.user_id,
                "author_name": viewer.name, "rating": rating, "text": text, "status": "visible",
                "created_at": at, "updated_ms": to_ms(at),
            })
        except ReviewExists:
            raise errors.Conflict("This profile has already reviewed this title; edit that review instead.",
                                  code="review_exists") from None
        await self._rate(doc["title_id"], rating, 1)
        return review_view(doc, viewer.user_id)

    async def _rate(self, title_id: str, delta_sum: int, delta_count: int) -> None:
        await self._titles.add_rating(title_id, delta_sum, delta_count)
        await self._catalog.changed([title_id])  # the cards' ratings, on every process

    async def _find(self, actor: Principal, review_id: str) -> tuple[dict[str, Any], bool]:
        """The review and whether `actor` wrote it; 404 unless they wrote it or moderate."""
        doc = await self._reviews.get(review_id)
        if doc is None:
            raise errors.NotFound("No such review.", code="review_not_found")
        mine = doc.get("user_id") == actor.user_id
        if not mine and not actor.can(MODERATE):
            raise errors.NotFound("No such review.", code="review_not_found")
        return doc, mine

    async def update(self, actor: Principal, review_id: str, changes: dict[str, Any], ip: str = "-") -> dict:
        doc, mine = await self._find(actor, review_id)
        status = changes.pop("status", None)
        if changes and not mine:
            raise errors.Forbidden("Only the author can change a review's rating or text.", code="not_author")
        if status is not None and not actor.can(MODERATE):
            raise errors.Forbidden("Only moderators can hide or show a review.", code="forbidden")
        if changes:
            doc = await self._edit(doc, changes)
        if status is not None and status != doc.get("status"):
            doc = await self._set_status(actor, doc, status, ip)
        return review_view(doc, actor.user_id)

    async def _edit(self, doc: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        at_ms = to_ms(self._clock())
        for _ in range(5):  # retried only if another edit landed between our read and write
            old = doc["rating"]
            new = changes.get("rating", old)
            updated = await self._reviews.update_if(
                str(doc["_id"]), {"rating": old, "status": doc["status"]}, {**changes, "edited_ms": at_ms,
                                                                             "updated_ms": at_ms})
            if updated is not None:
                if new != old and updated["status"] == "visible":
                    await self._rate(updated["title_id"], new - old, 0)
                return updated
            fresh = await self._reviews.get(str(doc["_id"]))
            if fresh is None:
                raise errors.NotFound("No such review.", code="review_not_found")
            doc = fresh
        raise errors.Conflict("The review changed while it was being edited; try again.", code="edit_conflict")

    async def _set_status(self, actor: Principal, doc: dict[str, Any], status: str, ip: str) -> dict[str, Any]:
        before = doc["status"]
        updated = await self._reviews.update_if(str(doc["_id"]), {"status": before, "rating": doc["rating"]},
                                                {"status": status, "updated_ms": to_ms(self._clock())})
        if updated is None:
            raise errors.Conflict("The review changed meanwhile; reload it.", code="edit_conflict")
        sign = 1 if status == "visible" else -1
        await self._rate(updated["title_id"], sign * updated["rating"], sign)
        await self._audit.record(actor, f"review.{'show' if status == 'visible' else 'hide'}", target_type="review",
                                 target_id=str(doc["_id"]), ip=ip,
                                 details={"title_id": doc["title_id"], "author_id": doc.get("user_id")})
        return updated

    async def delete(self, actor: Principal, review_id: str, ip: str = "-") -> None:
        doc, mine = await self._find(actor, review_id)
        gone = await self._reviews.delete(str(doc["_id"]))
        if gone is None:
            raise errors.NotFound("No such review.", code="review_not_found")
        if gone.get("status") == "visible":
            await self._rate(gone["title_id"], -int(gone["rating"]), -1)
        if not mine:
            await self._audit.record(actor, "review.delete", target_type="review", target_id=str(gone["_id"]), ip=ip,
                                     details={"title_id": gone["title_id"], "author_id": gone.get("user_id"),
                                              "rating": gone["rating"], "text": gone.get("text", "")})
