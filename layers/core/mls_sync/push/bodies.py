"""What a producer may POST, and the listing keys it names.

Three shapes (docs/push.md):

- an RCP-028 single EntityEvent: ``EntityEventSequence``, ``ResourceName``,
  ``ResourceRecordKey`` at the top level (and ``@reso.context``);
- an RCP-028 batch: ``{"@reso.context": ..., "value": [EntityEvent, ...]}``;
- a vendor webhook reduced to its keys: ``{"listingKeys": ["K1", ...]}``.

Only ``Property`` events name listings; events of other resources (Media, Member,
Showing, ...) are valid and counted as ignored. Fields a producer adds that we do not use
are tolerated (RESO payloads carry annotations such as ``@reso.context``); a field we use
that is missing or of the wrong type is refused with its place (``value[3].ResourceName``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

PROPERTY = "Property"
MAX_KEYS_PER_PUSH = 1000
"""Distinct listing keys one push may name (a sync job carries at most 1,000 keys)."""
MAX_LISTING_KEY_LENGTH = 255
"""RESO's ListingKey is String(255)."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class BodyError(ValueError):
    """The body is not one of the accepted shapes: ``message`` says where and why (never
    repeating the input). ``status`` 400, or 413 for too many keys."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def check_listing_key(value: str) -> str:
    """A listing key as the MLS sends it: 1-255 characters, no control characters, no
    surrounding spaces (a key that could never match a record is refused, not stored)."""
    if (
        not value
        or len(value) > MAX_LISTING_KEY_LENGTH
        or value != value.strip()
        or _CONTROL.search(value)
    ):
        raise ValueError(
            f"a listing key must be 1-{MAX_LISTING_KEY_LENGTH} characters without control "
            "characters or surrounding spaces"
        )
    return value


ListingKeyText = Annotated[str, AfterValidator(check_listing_key)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=False)


class EntityEvent(_Body):
    """One RCP-027 EntityEvent as RCP-028 pushes it."""

    sequence: int = Field(alias="EntityEventSequence", ge=0)
    resource_name: str = Field(alias="ResourceName", min_length=1, max_length=255)
    resource_record_key: str = Field(alias="ResourceRecordKey", min_length=1, max_length=1024)


class EntityEventBatch(_Body):
    value: list[EntityEvent]


class ListingKeysBody(_Body):
    listing_keys: list[ListingKeyText] = Field(alias="listingKeys")


@dataclass(frozen=True, slots=True)
class PushedKeys:
    """The distinct listing keys a push names, in the order first named, and how many
    events it carried for other resources."""

    keys: list[str]
    ignored: int = 0


_SHAPES = (
    "expected an RCP-028 EntityEvent (EntityEventSequence, ResourceName, ResourceRecordKey), "
    'a batch {"value": [EntityEvent, ...]}, or {"listingKeys": [...]}'
)


def pushed_keys(payload: dict[str, Any]) -> PushedKeys:
    """The listing keys ``payload`` names, or BodyError."""
    try:
        if "value" in payload:
            return _from_events(EntityEventBatch.model_validate(payload).value, where="value")
        if "listingKeys" in payload:
            body = ListingKeysBody.model_validate(payload)
            return _limited(PushedKeys(keys=list(dict.fromkeys(body.listing_keys))))
        if {"EntityEventSequence", "ResourceName", "ResourceRecordKey"} & payload.keys():
            return _from_events([EntityEvent.model_validate(payload)], where=None)
    except ValidationError as exc:
        raise BodyError(_problems(exc)) from None
    raise BodyError(f"body has none of the fields we read: {_SHAPES}")


def _from_events(events: list[EntityEvent], *, where: str | None) -> PushedKeys:
    keys: dict[str, None] = {}
    ignored = 0
    for index, event in enumerate(events):
        if event.resource_name != PROPERTY:
            ignored += 1
            continue
        try:
            check_listing_key(event.resource_record_key)
        except ValueError as exc:
            place = f"{where}[{index}]." if where else ""
            raise BodyError(f"{place}ResourceRecordKey: {exc}") from None
        keys[event.resource_record_key] = None
    return _limited(PushedKeys(keys=list(keys), ignored=ignored))


def _limited(found: PushedKeys) -> PushedKeys:
    if len(found.keys) > MAX_KEYS_PER_PUSH:
        raise BodyError(
            f"{len(found.keys)} listing keys in one push; at most {MAX_KEYS_PER_PUSH}: "
            "send them in smaller batches",
            status=413,
        )
    return found


def _problems(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        where = ""
        for step in err["loc"]:
            where += f"[{step}]" if isinstance(step, int) else (f".{step}" if where else step)
        message = err["msg"]
        if err["type"] == "value_error":  # "Value error, a listing key must ..."
            message = message.removeprefix("Value error, ")
        parts.append(f"{where or 'body'}: {message}")
    more = len(exc.errors()) - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
