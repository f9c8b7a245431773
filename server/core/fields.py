"""The one definition of each input field type, and the strict base of every request body.

REST handlers and Socket.IO events validate with the same models, so a value is accepted
or refused the same way on either edge. Ids are the 24 hex digits of `server.core.ids`.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from server.core.errors import ValidationFailed
from server.core.ids import ID_PATTERN
from server.core.paging import DEFAULT_LIMIT, MAX_LIMIT

M = TypeVar("M", bound=BaseModel)

Id = Annotated[str, StringConstraints(pattern=rf"^{ID_PATTERN}$")]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")]
Search = Annotated[str, StringConstraints(max_length=200)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ShortName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
Timestamp = Annotated[AwareDatetime, Field(strict=False)]  # ISO 8601 with its zone, as JSON sends it
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
Otp = Annotated[str, StringConstraints(strip_whitespace=True, min_length=6, max_length=32, pattern=r"^[0-9A-Za-z -]+$")]


class Body(BaseModel):
    """Request bodies: strict types, so `{"$ne": null}` where a string belongs is a 400."""

    model_config = ConfigDict(strict=True, extra="ignore", str_max_length=10_000)


class PageQuery(Body):
    model_config = ConfigDict(strict=False, extra="ignore")
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, max_length=512)


def validate(model: type[M], data: Any) -> M:
    """The one way an edge turns untrusted data into a model: a 400 naming each bad field,
    never echoing the offending input."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields: dict[str, str] = {}
        for err in exc.errors(include_input=False, include_url=False):
            path = ".".join(str(p) for p in err.get("loc", ())) or "body"
            fields.setdefault(path, err.get("msg", "invalid"))
        raise ValidationFailed(details={"fields": fields}) from None
