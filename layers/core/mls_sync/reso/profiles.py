"""Vendor profiles as data. Every number and field name a vendor decides lives here, never in
the client's logic (domain.md Part 2). Values marked [?] in the reference are guesses chosen
so that being wrong costs a few extra requests, not a missed record."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mls_sync.reso.odata import EnumLiteral

Paging = Literal["keyset", "anchor", "traverse"]
"""How changes are paged.

- ``keyset``: ``$orderby=<ts> asc,ListingKey asc`` and, per page, a filter strictly after the
  last (timestamp, key) seen, with ``$top`` alone. nextLinks are never followed, so an
  offset nextLink over records that change between pages cannot skip anything.
- ``anchor``: for servers that can order by timestamp but cannot filter on the key (MLS
  Grid). ``$orderby=<ts> asc``; each page re-anchors at ``<ts> ge <last timestamp>`` and
  drops keys already seen at that timestamp; only a run of equal timestamps longer than a
  page falls back to the server's nextLink. A page out of timestamp order degrades the
  client to ``traverse`` for its life (``ReplicationClient.degraded``).
- ``traverse``: for servers whose order we cannot set (Spark orders by ListingKey). Follow
  the nextLinks from ``<ts> ge <start>`` to the end (``Prefer: odata.maxpagesize``); a result
  exactly ``$top`` long may have been cut by ``$top`` (a limit on the whole result in OData),
  so it continues in further windows until one comes back short. The cursor moves only when
  the whole traversal has been read.
"""


class Quotas(BaseModel):
    """Request budgets. ``None`` = no known limit at that granularity."""

    model_config = ConfigDict(frozen=True)

    per_second: float | None = None
    per_minute: float | None = None
    per_hour: float | None = None
    per_day: float | None = None


class QuotaHeader(BaseModel):
    """A vendor's "requests left" header and the header saying when the budget resets."""

    model_config = ConfigDict(frozen=True)

    remaining: str
    reset: str | None = None
    period: Literal["minute", "hour", "day"] | None = None
    """The quota the header counts down (the shared budget raises its own count for that
    window to what the vendor says is used); ``None``: only "exhausted" is acted on."""


class VendorProfile(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    page_size: int = Field(gt=0)
    """The largest ``$top`` the vendor serves for this use."""
    change_field: str = "ModificationTimestamp"
    key_field: str = "ListingKey"
    lookup_field: str = "ListingKey"
    """Field that reconciliation filters on with ``in``; MLS Grid cannot filter ListingKey."""
    key_filterable: bool = True
    visibility_field: str | None = None
    """A boolean field; false means the listing left the feed (→ deleted). Never filtered."""
    paging: Paging = "keyset"
    requires_originating_system: bool = False
    lowercase_originating_system: bool = False
    supports_in: bool = True
    """``in`` is OData 4.01; a 4.0 server may refuse it (400), after which the client falls
    back to ``or`` chains of at most ``or_batch`` terms (``max_or`` + 1 where the vendor caps
    ``or``)."""
    max_in_batch: int = Field(default=100, gt=0)
    max_or: int | None = None
    or_batch: int = Field(default=20, gt=0)
    """Keys per ``or`` chain when ``in`` is unavailable: keeps the URL well under 8 KB."""
    enum_literal: EnumLiteral = "string"
    """How enumeration values are written in filters: ``'Active'`` (Data Dictionary 1.7+
    lookups; every vendor here) or ``Odata.Models.StandardStatus'Active'`` (Edm.EnumType)."""
    token_auth_first: Literal["basic", "body"] = "basic"  # noqa: S105 - a method name
    """Client authentication tried first at the token endpoint (RFC 6749 §2.3.1: servers MUST
    accept HTTP Basic; the body form is optional). The other is tried once on invalid_client
    and remembered."""
    quotas: Quotas = Quotas()
    quota_headers: tuple[QuotaHeader, ...] = ()
    overlap_seconds: float = Field(default=300.0, ge=0)
    future_skew_seconds: float = Field(default=60.0, ge=0)
    """How far past the server's clock (its ``Date`` header, else ours) a cursor may go. A
    record stamped later is still applied, but the cursor stops there, so one record stamped in
    the future (a zone bug, a ``9999`` sentinel) cannot carry it past every later change."""
    auth: Literal["bearer", "client_credentials", "either"] = "either"
    path: str = "{resource}"
    """Resource path below the base URL; bridge puts the dataset in front."""
    gzip: bool = True
    max_page_bytes: int = Field(default=50_000_000, gt=0)
    """Largest decoded page body read (bytes); a larger one is cut off as soon as it passes
    the limit (or refused from its ``Content-Length``) with ``MlsPageTooLarge``, so one huge
    page cannot exhaust the worker's memory."""

    event_page_size: int | None = Field(default=None, gt=0)
    """``$top`` for EntityEvent reads (events are three small fields, so pages can be long);
    None: 1,000, but never more than ``page_size`` (the vendor's known largest page)."""

    @property
    def event_page(self) -> int:
        return self.event_page_size or min(1000, self.page_size)

    def resource_path(self, resource: str, dataset: str | None) -> str:
        if "{dataset}" in self.path and not dataset:
            raise ValueError(f"vendor {self.name} needs a dataset")
        return self.path.format(resource=resource, dataset=dataset or "")

    @property
    def select_fields(self) -> tuple[str, ...]:
        fields = [
            self.key_field,
            "StandardStatus",
            "MlsStatus",
            self.change_field,
            "StatusChangeTimestamp",
            "CloseDate",
        ]
        if self.change_field != "ModificationTimestamp":
            fields.append("ModificationTimestamp")
        if self.lookup_field != self.key_field:
            fields.append(self.lookup_field)
        if self.visibility_field:
            fields.append(self.visibility_field)
        return tuple(fields)


PROFILES: dict[str, VendorProfile] = {
    # Generic RESO Web API Core server: conservative page and pace.
    "reso": VendorProfile(
        name="reso",
        page_size=200,
        quotas=Quotas(per_second=5),
        overlap_seconds=300,
    ),
    "mlsgrid": VendorProfile(
        name="mlsgrid",
        page_size=5000,
        lookup_field="ListingId",
        key_filterable=False,
        visibility_field="MlgCanView",
        paging="anchor",
        requires_originating_system=True,
        lowercase_originating_system=True,
        max_in_batch=100,
        max_or=5,
        quotas=Quotas(per_second=2, per_hour=7200, per_day=40000),
        overlap_seconds=300,  # [?] none documented
        auth="bearer",
    ),
    "trestle": VendorProfile(
        name="trestle",
        page_size=1000,
        quotas=Quotas(per_minute=180, per_hour=7200),
        quota_headers=(
            QuotaHeader(
                remaining="Hour-Quota-Available", reset="Hour-Quota-ResetTime", period="hour"
            ),
        ),
        overlap_seconds=300,  # [?] mass re-stamps happen; reconciliation covers the rest
        auth="client_credentials",
        token_auth_first="body",  # noqa: S106 - Trestle's own example posts client_id/secret in the form
    ),
    "bridge": VendorProfile(
        name="bridge",
        page_size=200,
        change_field="BridgeModificationTimestamp",
        quotas=Quotas(per_minute=5000 / 15, per_hour=5000),
        quota_headers=(
            QuotaHeader(
                remaining="Burst-RateLimit-Remaining",
                reset="Burst-RateLimit-Reset",
                period="minute",
            ),
            QuotaHeader(
                remaining="Application-RateLimit-Remaining",
                reset="Application-RateLimit-Reset",
                period="hour",
            ),
        ),
        overlap_seconds=300,  # [?]
        auth="bearer",
        path="{dataset}/{resource}",
    ),
    "spark": VendorProfile(
        name="spark",
        page_size=1000,
        paging="traverse",
        quotas=Quotas(per_minute=60),  # [?] numbers undocumented; 429 code 1550
        overlap_seconds=1200,  # Spark: query from last success - 20 minutes
        auth="bearer",
    ),
}


def profile_for(vendor: str) -> VendorProfile:
    try:
        return PROFILES[vendor]
    except KeyError:
        raise ValueError(
            f"unknown MLS vendor {vendor!r} (expected one of: {', '.join(PROFILES)})"
        ) from None
