"""The compact form of a title that every list shows, built in one place so the read model
and the database paths answer the same bytes."""

from __future__ import annotations

from typing import Any


def rating_view(doc: dict[str, Any]) -> dict[str, Any]:
    count = int(doc.get("rating_count", 0))
    total = int(doc.get("rating_sum", 0))
    return {"average": round(total / count, 2) if count > 0 else None, "count": count}


def title_card(doc: dict[str, Any]) -> dict[str, Any]:
    """The compact form every list shows."""
    return {
        "id": str(doc["_id"]),
        "type": doc.get("type"),
        "title": doc.get("title"),
        "year": doc.get("year"),
        "genres": list(doc.get("genres", [])),
        "maturity_rating": doc.get("maturity_rating"),
        "artwork": dict(doc.get("artwork") or {}),
        "runtime_s": doc.get("runtime_s"),
        "rating": rating_view(doc),
        "playable": bool(doc.get("playable")),
    }
