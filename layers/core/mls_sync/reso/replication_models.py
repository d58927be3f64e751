"""What the replication client is given and what it hands back.

:class:`ReplicationTarget` says where one connection's listings live (vendor, base URL,
resource, dataset, and the filters that narrow an MLS to the agent's own listings), checked
against the vendor's profile. :class:`ChangePage` is one page of changes with the cursor safe
to persist once it is applied; :class:`KeyLookup` what a read by key found, and which keys the
MLS no longer returns.
"""

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mls_sync.models import Cursor, Vendor
from mls_sync.reso.profiles import profile_for
from mls_sync.reso.records import MlsRecord, SkippedRecord


class ReplicationTarget(BaseModel):
    """Where one connection's listings live."""

    model_config = ConfigDict(frozen=True)

    vendor: Vendor
    base_url: str = Field(min_length=1)
    resource: str = "Property"
    dataset: str | None = None
    originating_system_name: str | None = None
    extra_filter: str | None = None
    """Optional OData condition AND-ed into every query (e.g. ``ListOfficeMlsId eq 'X'``)
    so a large MLS's changes are narrowed to the agent's own listings."""

    @model_validator(mode="after")
    def _vendor_needs(self) -> Self:
        profile = profile_for(self.vendor)
        if profile.requires_originating_system and not self.originating_system_name:
            raise ValueError(f"vendor {self.vendor} needs originating_system_name")
        profile.resource_path(self.resource, self.dataset)
        return self


class ChangePage(BaseModel):
    model_config = ConfigDict(frozen=True)

    records: list[MlsRecord]
    skipped: list[SkippedRecord]
    cursor: Cursor
    """Safe to persist once this page's records are applied."""
    complete: bool
    """True on the last page of this run of changes."""
    future: list[str] = Field(default_factory=list)
    """Keys of this page's records stamped later than the server's clock plus the skew: they
    are in ``records`` (apply them), but ``cursor`` stops at that clock (count and warn)."""
    degraded: str | None = None
    """Why this page was read in a slower safe mode (see ``ReplicationClient.degraded``)."""


class KeyLookup(BaseModel):
    model_config = ConfigDict(frozen=True)

    found: dict[str, MlsRecord]
    """By the key asked for (ListingKey, or ListingId where the vendor looks up by it)."""
    missing: list[str]
    """Asked for, not returned twice in a row: the listing left the feed (→ deleted)."""
    skipped: list[SkippedRecord]
