"""The status vocabulary: our statuses and how RESO StandardStatus maps onto them."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A listing's status as mls-sync stores it (CONTRACT section 3)."""

    ACTIVE = "active"
    PENDING = "pending"
    SOLD = "sold"
    COMING_SOON = "coming_soon"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"
    CANCELED = "canceled"
    HOLD = "hold"
    DELETED = "deleted"
    INCOMPLETE = "incomplete"


class StandardStatus(StrEnum):
    """RESO Data Dictionary StandardStatus, by its display name (11 values, DD 1.7-2.1)."""

    ACTIVE = "Active"
    ACTIVE_UNDER_CONTRACT = "Active Under Contract"
    PENDING = "Pending"
    CLOSED = "Closed"
    COMING_SOON = "Coming Soon"
    EXPIRED = "Expired"
    WITHDRAWN = "Withdrawn"
    CANCELED = "Canceled"
    HOLD = "Hold"
    DELETE = "Delete"
    INCOMPLETE = "Incomplete"

    @property
    def lookup_name(self) -> str:
        """The enumeration's lookup name, e.g. ``ActiveUnderContract``."""
        return self.value.replace(" ", "")

    @property
    def status(self) -> Status:
        return _TO_STATUS[self]


_TO_STATUS: dict[StandardStatus, Status] = {
    StandardStatus.ACTIVE: Status.ACTIVE,
    StandardStatus.ACTIVE_UNDER_CONTRACT: Status.PENDING,
    StandardStatus.PENDING: Status.PENDING,
    StandardStatus.CLOSED: Status.SOLD,
    StandardStatus.COMING_SOON: Status.COMING_SOON,
    StandardStatus.EXPIRED: Status.EXPIRED,
    StandardStatus.WITHDRAWN: Status.WITHDRAWN,
    StandardStatus.CANCELED: Status.CANCELED,
    StandardStatus.HOLD: Status.HOLD,
    StandardStatus.DELETE: Status.DELETED,
    StandardStatus.INCOMPLETE: Status.INCOMPLETE,
}

# Both spellings a payload may carry: display name and lookup name.
_BY_NAME: dict[str, StandardStatus] = {
    **{s.value: s for s in StandardStatus},
    **{s.lookup_name: s for s in StandardStatus},
}


class UnknownStatusError(ValueError):
    """A status value that is in neither vocabulary. It is never stored."""

    def __init__(self, value: object, expected: list[str]) -> None:
        self.value = value
        super().__init__(f"{value!r} is not a status (expected one of: {', '.join(expected)})")


def parse_standard_status(value: object) -> StandardStatus:
    """Parses a RESO StandardStatus in display ('Active Under Contract') or lookup
    ('ActiveUnderContract') form. Anything else raises UnknownStatusError naming the value."""
    if isinstance(value, str):
        found = _BY_NAME.get(value.strip())
        if found is not None:
            return found
    raise UnknownStatusError(value, [s.value for s in StandardStatus])


def status_from_reso(value: object) -> Status:
    """Our status for a RESO StandardStatus value in either form."""
    return parse_standard_status(value).status


def parse_status(value: object) -> Status:
    """Parses one of our own status names ('active', 'sold', ...)."""
    if isinstance(value, str):
        try:
            return Status(value)
        except ValueError:
            pass
    raise UnknownStatusError(value, [s.value for s in Status])
