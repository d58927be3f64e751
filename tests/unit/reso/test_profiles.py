"""Vendor profiles hold the reference table's facts as data."""

from __future__ import annotations

import pytest
from mls_sync.reso.profiles import PROFILES, profile_for


def test_every_contract_vendor_has_a_profile() -> None:
    assert set(PROFILES) == {"reso", "mlsgrid", "trestle", "bridge", "spark"}


def test_mlsgrid_facts() -> None:
    p = profile_for("mlsgrid")
    assert p.page_size == 5000
    assert p.requires_originating_system
    assert p.lowercase_originating_system
    assert not p.key_filterable
    assert p.lookup_field == "ListingId"
    assert p.visibility_field == "MlgCanView"
    assert p.max_or == 5
    assert (p.quotas.per_second, p.quotas.per_hour, p.quotas.per_day) == (2, 7200, 40000)
    assert "MlgCanView" in p.select_fields
    assert "ListingId" in p.select_fields


def test_bridge_uses_its_own_timestamp_and_dataset_path() -> None:
    p = profile_for("bridge")
    assert p.change_field == "BridgeModificationTimestamp"
    assert p.resource_path("Property", "test") == "test/Property"
    assert "ModificationTimestamp" in p.select_fields
    with pytest.raises(ValueError, match="dataset"):
        p.resource_path("Property", None)


def test_spark_overlap_is_twenty_minutes() -> None:
    assert profile_for("spark").overlap_seconds == 1200


def test_trestle_is_client_credentials_with_quota_headers() -> None:
    p = profile_for("trestle")
    assert p.auth == "client_credentials"
    assert p.page_size == 1000
    assert p.quota_headers[0].remaining == "Hour-Quota-Available"


def test_unknown_vendor_names_the_choices() -> None:
    with pytest.raises(ValueError, match="expected one of: reso, mlsgrid"):
        profile_for("zillow")
