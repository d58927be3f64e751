"""The portfolio file (CONTRACT section 4): what `mls-sync seed` reads and `dump --json` prints.

Validation reports every error at once, each as ``FILE: section[index].field: message``, so
a person fixes a file in one pass. Secrets (MLS credentials, platform tokens) are
``SecretStr`` and no message ever repeats an input value from a secret-bearing field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from mls_sync.models import (
    Detection,
    Ident,
    Model,
    NonEmpty,
    Platform,
    PostStatus,
    UtcText,
    Vendor,
)
from mls_sync.netpolicy import OutboundRefusedError, check_url, is_loopback_host
from mls_sync.status import Status, parse_status
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

SECTIONS: tuple[str, ...] = ("users", "connections", "platformAccounts", "listings", "posts")

# Where secrets live: an error anywhere inside these objects never quotes the input (even a
# field that is not secret may have been handed a token by a slip of the pen).
_SECRET_PARENTS = frozenset({"credentials", "token"})


# ---------------------------------------------------------------------------- records


class MlsCredentials(Model):
    """How to authenticate to the MLS: a bearer ``token`` (MLS Grid, Spark, Bridge) or OAuth2
    client credentials (``clientId``, ``clientSecret``, ``tokenUrl``, optional ``scope``)."""

    token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    token_url: str | None = None
    scope: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> MlsCredentials:
        oauth = (self.client_id, self.client_secret, self.token_url)
        if self.token is not None:
            if any(v is not None for v in oauth):
                raise ValueError("give either token or clientId/clientSecret/tokenUrl, not both")
            if not self.token.get_secret_value():
                raise ValueError("token is empty")
        elif any(v is None for v in oauth):
            raise ValueError("give either token or all of clientId, clientSecret and tokenUrl")
        return self

    def secret_value(self) -> dict[str, str]:
        """The JSON object stored in Secrets Manager."""
        if self.token is not None:
            return {"token": self.token.get_secret_value()}
        value = {
            "clientId": self.client_id or "",
            "clientSecret": self.client_secret.get_secret_value() if self.client_secret else "",
            "tokenUrl": self.token_url or "",
        }
        if self.scope:
            value["scope"] = self.scope
        return value


class PlatformToken(Model):
    access_token: SecretStr
    refresh_token: SecretStr | None = None
    expires_at: UtcText | None = None

    @field_validator("access_token")
    @classmethod
    def _not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("accessToken is empty")
        return value

    def secret_value(self) -> dict[str, str]:
        value = {"accessToken": self.access_token.get_secret_value()}
        if self.refresh_token is not None:
            value["refreshToken"] = self.refresh_token.get_secret_value()
        if self.expires_at is not None:
            value["expiresAt"] = self.expires_at
        return value


class PortfolioUser(Model):
    user_id: Ident
    name: str | None = None
    email: str | None = None


class PortfolioConnection(Model):
    connection_id: Ident
    user_id: Ident
    vendor: Vendor
    base_url: NonEmpty
    resource: NonEmpty = "Property"
    dataset: str | None = None
    originating_system_name: str | None = None
    credentials: MlsCredentials
    enabled: bool = True
    overlap_seconds: int | None = Field(default=None, ge=0, le=86_400)
    brake_share: float = Field(default=0.2, gt=0, le=1)
    """Mass-change brake: hold takedowns when one run would take down (or delete) more than
    this share of the connection's listings ..."""
    brake_min_listings: int = Field(default=10, ge=0)
    """... and more than this many."""
    detection: Detection = "auto"
    """How changes are learnt: ``replication`` (the feed by timestamp), ``entityEvent``
    (the RESO EntityEvent log), ``auto`` (the log when the server's ``$metadata`` offers it)."""


class PortfolioAccount(Model):
    account_id: Ident
    user_id: Ident
    platform: Platform
    external_id: NonEmpty
    connected_via: Literal["facebook_login", "instagram_login"] | None = None
    token: PlatformToken


class PortfolioListing(Model):
    listing_id: Ident
    user_id: Ident
    connection_id: Ident
    listing_key: NonEmpty
    mls_listing_id: NonEmpty | None = None  # MLS Grid is reconciled by ListingId
    status: Status
    standard_status: str | None = None
    mls_status: str | None = None
    mls_modified_at: UtcText | None = None
    sync_excluded: bool = False

    @field_validator("status", mode="before")
    @classmethod
    def _known_status(cls, value: object) -> Status:
        return parse_status(value)


class PortfolioPost(Model):
    post_id: Ident
    listing_id: Ident
    platform: Platform
    account_id: Ident
    platform_post_id: NonEmpty
    status: PostStatus = PostStatus.PUBLISHED
    permalink: str | None = None
    published_at: UtcText | None = None


class Portfolio(Model):
    """One portfolio file: an agency's agents, their MLS connections and social accounts, the
    listings tracked and the posts made about them."""

    users: list[PortfolioUser] = Field(default_factory=list)
    connections: list[PortfolioConnection] = Field(default_factory=list)
    platform_accounts: list[PortfolioAccount] = Field(default_factory=list)
    listings: list[PortfolioListing] = Field(default_factory=list)
    posts: list[PortfolioPost] = Field(default_factory=list)


_RECORD_MODELS: dict[str, type[Model]] = {
    "users": PortfolioUser,
    "connections": PortfolioConnection,
    "platformAccounts": PortfolioAccount,
    "listings": PortfolioListing,
    "posts": PortfolioPost,
}

_ID_FIELDS: dict[str, str] = {
    "users": "userId",
    "connections": "connectionId",
    "platformAccounts": "accountId",
    "listings": "listingId",
    "posts": "postId",
}

# Every reference between records: (section, field, the section it names).
REFERENCES: tuple[tuple[str, str, str], ...] = (
    ("connections", "userId", "users"),
    ("platformAccounts", "userId", "users"),
    ("listings", "userId", "users"),
    ("listings", "connectionId", "connections"),
    ("posts", "listingId", "listings"),
    ("posts", "accountId", "platformAccounts"),
)

StackLookup = Callable[[str, Collection[str]], Mapping[str, Mapping[str, Any]]]
"""Reads records already in a stack: ``lookup(section, ids)`` answers the ones found, by id,
as stored (camelCase attributes: a connection's ``userId``, an account's ``platform``). A
reference the file does not resolve is looked up there before it counts as an error, so a
file may add listings and posts to connections, accounts and listings seeded earlier."""


# ---------------------------------------------------------------------------- loading


class _Loader(yaml.SafeLoader):
    """YAML with numbers and dates left as text: ids like ``12345`` and unquoted timestamps
    stay the strings they look like (pydantic still reads "300" into an int field)."""


_PLAIN_TAGS = {
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _PLAIN_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class PortfolioError(Exception):
    """The file could not be read as a portfolio; ``errors`` holds every problem found."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__(f"{len(errors)} error(s) in portfolio")


def _parse_text(text: str, name: str, suffix: str) -> object:
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            # exc.msg never quotes the document, so no secret can leak through it.
            raise PortfolioError(
                [f"{name}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}"]
            ) from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        # str(exc) would quote the offending line (maybe a token): problem and place only.
        mark = exc.problem_mark
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        raise PortfolioError([f"{name}: {where}invalid YAML: {exc.problem}"]) from None
    except yaml.YAMLError:
        raise PortfolioError([f"{name}: invalid YAML"]) from None


# ---------------------------------------------------------------------------- validation


def validate_portfolio(
    path: str | Path, *, stack: StackLookup | None = None
) -> Portfolio | list[str]:
    """Reads and validates a portfolio file (JSON or YAML). Returns the portfolio, or every
    error found, each as ``FILE: section[index].field: message``. With ``stack``, references
    the file does not resolve are looked up in the stack (once, all together) first."""
    file = Path(path)
    name = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        return [f"{name}: cannot read: {exc.strerror or type(exc).__name__}"]
    except UnicodeDecodeError:
        return [f"{name}: cannot read: not UTF-8 text"]
    return validate_text(text, name, suffix=file.suffix.lower(), stack=stack)


def validate_text(
    text: str, name: str, *, suffix: str = ".yaml", stack: StackLookup | None = None
) -> Portfolio | list[str]:
    try:
        document = _parse_text(text, name, suffix)
    except PortfolioError as exc:
        return exc.errors
    return validate_document(document, name, stack=stack)


def validate_document(
    document: object, name: str, *, stack: StackLookup | None = None
) -> Portfolio | list[str]:
    """Validates an already parsed document: every record on its own, then the references
    between records (and, with ``stack``, to records already in the stack)."""
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        return [f"{name}: the file must hold one object with sections {', '.join(SECTIONS)}"]
    errors: list[str] = [
        f"{name}: {key}: unknown section (expected one of: {', '.join(SECTIONS)})"
        for key in document
        if key not in SECTIONS
    ]
    raw: dict[str, list[Any]] = {}
    for section in SECTIONS:
        value = document.get(section)
        if value is None:
            raw[section] = []
        elif isinstance(value, list):
            raw[section] = value
        else:
            errors.append(f"{name}: {section}: must be a list of records")
            raw[section] = []

    valid: dict[str, dict[int, Model]] = {s: {} for s in SECTIONS}
    for section in SECTIONS:
        model = _RECORD_MODELS[section]
        for index, record in enumerate(raw[section]):
            where = f"{section}[{index}]"
            if not isinstance(record, Mapping):
                errors.append(f"{name}: {where}: must be an object")
                continue
            try:
                valid[section][index] = model.model_validate(record)
            except ValidationError as exc:
                errors.extend(f"{name}: {where}{msg}" for msg in _describe(exc))

    errors.extend(f"{name}: {problem}" for problem in _cross_check(raw, stack))
    if errors:
        return sorted(errors, key=lambda e: _order(e, name))
    return Portfolio.model_validate(
        {
            "users": list(valid["users"].values()),
            "connections": list(valid["connections"].values()),
            "platformAccounts": list(valid["platformAccounts"].values()),
            "listings": list(valid["listings"].values()),
            "posts": list(valid["posts"].values()),
        }
    )


def _order(error: str, name: str) -> tuple[int, int]:
    """File order: section by section, record by record (file-level errors first)."""
    where = error.removeprefix(f"{name}: ").split(".", 1)[0].split(":", 1)[0]
    section, _, rest = where.partition("[")
    if section not in SECTIONS or not rest.rstrip("]").isdigit():
        return (-1, 0)
    return (SECTIONS.index(section), int(rest.rstrip("]")))


def _describe(exc: ValidationError) -> Iterable[str]:
    """``.field.sub: message`` for each pydantic error, never quoting a secret."""
    for err in exc.errors(include_url=False, include_input=True):
        loc = err["loc"]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
        secret = any(p in _SECRET_PARENTS for p in loc)
        message = _message(err, secret=secret)
        value = err.get("input")
        if secret and isinstance(value, str) and value:
            # Belt and braces: whatever a validator said, the secret's text never leaves.
            message = message.replace(repr(value), "the value").replace(value, "***")
        yield f"{path}: {message}"


def _message(err: Mapping[str, Any], *, secret: bool) -> str:
    kind = err["type"]
    if kind == "value_error":
        cause = err.get("ctx", {}).get("error")
        text = str(cause) if cause is not None else str(err["msg"])
        return text.removeprefix("Value error, ")
    if kind in ("enum", "literal_error") and not secret:
        expected = str(err.get("ctx", {}).get("expected", "")).replace("'", "")
        expected = expected.replace(" or ", ", ")
        return f"{err['input']!r} is not one of: {expected}"
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown field"
    return str(err["msg"])


def _text(record: object, field: str) -> str | None:
    """A string field of a raw record (camelCase as written, or snake_case), else None."""
    if not isinstance(record, Mapping):
        return None
    value = record.get(field)
    if value is None:
        value = record.get(_snake(field))
    return value if isinstance(value, str) and value else None


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _cross_check(raw: Mapping[str, Sequence[Any]], stack: StackLookup | None = None) -> list[str]:
    """References and uniqueness between records, read from the records as written, so a
    record with a bad field still has its references checked (every error in one pass).
    References the file does not resolve are looked up in ``stack`` when one is given."""
    problems: list[str] = []

    def ids(section: str) -> dict[str, int]:
        found: dict[str, int] = {}
        id_field = _ID_FIELDS[section]
        for index, record in enumerate(raw[section]):
            value = _text(record, id_field)
            if value is None:
                continue
            if value in found:
                problems.append(
                    f"{section}[{index}].{id_field}: duplicate id {value!r}"
                    f" (first at {section}[{found[value]}])"
                )
            else:
                found[value] = index
        return found

    pools = {section: ids(section) for section in SECTIONS}
    users = pools["users"]
    connections = pools["connections"]
    accounts = pools["platformAccounts"]
    listings = pools["listings"]

    # What the file does not hold, read from the stack in one go per section.
    in_stack: dict[str, Mapping[str, Mapping[str, Any]]] = {}
    if stack is not None:
        missing: dict[str, set[str]] = {}
        for section, field, named in REFERENCES:
            for record in raw[section]:
                value = _text(record, field)
                if value is not None and value not in pools[named]:
                    missing.setdefault(named, set()).add(value)
        in_stack = {named: stack(named, sorted(wanted)) for named, wanted in missing.items()}

    def ref(
        section: str, index: int, field: str, pool: Mapping[str, int], what: str
    ) -> Mapping[str, Any] | None:
        """The referenced record (the file's, else the stack's), or None (after noting an
        unknown reference)."""
        value = _text(raw[section][index], field)
        if value is None:
            return None  # missing or mistyped: the record's own validation reports it
        if value in pool:
            record: object = raw[_SECTION_OF[what]][pool[value]]
            return record if isinstance(record, Mapping) else None
        if stack is None:
            problems.append(f"{section}[{index}].{field}: unknown {what} {value!r}")
            return None
        found = in_stack.get(_SECTION_OF[what], {}).get(value)
        if found is None:
            problems.append(
                f"{section}[{index}].{field}: {value!r} is neither in this file nor in the stack"
            )
        return found

    for i, conn in enumerate(raw["connections"]):
        ref("connections", i, "userId", users, "user")
        problems.extend(f"connections[{i}].{p}" for p in _connection_problems(conn))

    for i, account in enumerate(raw["platformAccounts"]):
        ref("platformAccounts", i, "userId", users, "user")
        platform = _text(account, "platform")
        via = _text(account, "connectedVia")
        if platform == Platform.INSTAGRAM and via is None:
            problems.append(
                f"platformAccounts[{i}].connectedVia: required for instagram accounts"
                " (facebook_login or instagram_login)"
            )
        elif platform in (Platform.FACEBOOK, Platform.LINKEDIN) and via is not None:
            problems.append(f"platformAccounts[{i}].connectedVia: only instagram accounts have one")

    seen_keys: dict[tuple[str, str], int] = {}
    for i, listing in enumerate(raw["listings"]):
        ref("listings", i, "userId", users, "user")
        owner = ref("listings", i, "connectionId", connections, "connection")
        user = _text(listing, "userId")
        conn_user = _text(owner, "userId")
        if conn_user is not None and user is not None and conn_user != user:
            problems.append(
                f"listings[{i}].connectionId: connection {_text(listing, 'connectionId')!r}"
                f" belongs to user {conn_user!r}, not {user!r}"
            )
        conn_id, key = _text(listing, "connectionId"), _text(listing, "listingKey")
        if conn_id is None or key is None:
            continue
        if (conn_id, key) in seen_keys:
            problems.append(
                f"listings[{i}].listingKey: {key!r} is already tracked on connection"
                f" {conn_id!r} by listings[{seen_keys[conn_id, key]}]"
            )
        else:
            seen_keys[conn_id, key] = i

    for i, post in enumerate(raw["posts"]):
        ref("posts", i, "listingId", listings, "listing")
        target = ref("posts", i, "accountId", accounts, "platform account")
        platform = _text(post, "platform")
        account_platform = _text(target, "platform")
        if platform is not None and account_platform is not None and platform != account_platform:
            problems.append(
                f"posts[{i}].platform: {platform!r} does not match account"
                f" {_text(post, 'accountId')!r}, which is {account_platform!r}"
            )
    return problems


_SECTION_OF: dict[str, str] = {
    "user": "users",
    "connection": "connections",
    "platform account": "platformAccounts",
    "listing": "listings",
}

# Fields a vendor cannot work without (see reference/domain.md).
_VENDOR_NEEDS: dict[str, str] = {"mlsgrid": "originatingSystemName", "bridge": "dataset"}


def _connection_problems(conn: object) -> list[str]:
    problems = []
    vendor = _text(conn, "vendor")
    need = _VENDOR_NEEDS.get(vendor or "")
    if need is not None and _text(conn, need) is None:
        problems.append(f"{need}: required for vendor {vendor}")
    base_url = _text(conn, "baseUrl")
    url_problem = secure_url_problem(base_url) if base_url else None
    if url_problem:
        problems.append(f"baseUrl: {url_problem}")
    credentials = conn.get("credentials") if isinstance(conn, Mapping) else None
    token_url = _text(credentials, "tokenUrl")
    token_problem = secure_url_problem(token_url) if token_url else None
    if token_problem:
        problems.append(f"credentials.tokenUrl: {token_problem}")
    return problems


def secure_url_problem(url: str) -> str | None:
    """Why ``url`` is not an acceptable endpoint (https, or http on a loopback host), or None.
    The URL itself is not repeated: it may carry user:password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https") or not host:
        return "must be an absolute https:// URL"
    if parts.scheme == "http" and not is_loopback_host(host):
        return "must use https (http only for a loopback host)"
    try:
        # The service's outbound policy, as local mode applies it: a public DNS name over
        # https, or a loopback simulator. The message names scheme and host only.
        check_url(url, allow_loopback=True, what="the URL")
    except OutboundRefusedError as exc:
        return str(exc).removeprefix("the URL ").removeprefix("the URL: ")
    return None


__all__ = [
    "REFERENCES",
    "SECTIONS",
    "MlsCredentials",
    "PlatformToken",
    "Portfolio",
    "PortfolioAccount",
    "PortfolioConnection",
    "PortfolioError",
    "PortfolioListing",
    "PortfolioPost",
    "PortfolioUser",
    "StackLookup",
    "secure_url_problem",
    "validate_document",
    "validate_portfolio",
    "validate_text",
]
