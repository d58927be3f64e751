"""`sim platforms` (not --strict) accepts the tokens and posts the stack holds, learnt on a
miss; what it has done itself wins over the stack; strict mode knows only what it is told."""

from __future__ import annotations

import httpx

from mls_sync_local.sim.platforms import PlatformSimulator
from mls_sync_local.sim.stack_source import KnownPost, KnownToken, StackContents

LINKEDIN = {"LinkedIn-Version": "202601", "X-Restli-Protocol-Version": "2.0.0"}


def _stack() -> StackContents:
    return StackContents(
        tokens=(
            KnownToken("facebook", "a-fb", "my-page-token"),
            KnownToken("linkedin", "a-li", "my-li-token", refresh_token="my-li-refresh"),
        ),
        posts=(
            KnownPost("facebook", "111_3", "a-fb"),
            KnownPost("linkedin", "urn:li:share:3", "a-li"),
        ),
    )


def test_seeded_tokens_and_posts_are_accepted_and_a_deleted_post_stays_deleted() -> None:
    loads: list[int] = []

    def source() -> StackContents:
        loads.append(1)
        return _stack()

    with PlatformSimulator(source=source) as sim:
        auth = {"Authorization": "Bearer my-page-token"}
        # When the publisher deletes a seeded Facebook post with the seeded token
        first = httpx.delete(f"{sim.url}/v21.0/111_3", headers=auth)
        # Then it goes; a second delete finds it gone although the stack still lists it
        assert first.json() == {"success": True}
        again = httpx.delete(f"{sim.url}/v21.0/111_3", headers=auth)
        assert again.json()["error"]["error_subcode"] == 33
        # And a LinkedIn post goes with its own token
        urn = "urn%3Ali%3Ashare%3A3"
        li = httpx.delete(
            f"{sim.url}/rest/posts/{urn}",
            headers={**LINKEDIN, "Authorization": "Bearer my-li-token"},
        )
        assert li.status_code == 204
        # And a token the stack does not hold is still refused
        bad = httpx.delete(f"{sim.url}/v21.0/111_3", headers={"Authorization": "Bearer nope"})
        assert bad.json()["error"]["code"] == 190
        assert sim.post("facebook", "111_3").state == "deleted"
        assert len(loads) >= 2  # learnt on misses only


def test_strict_mode_knows_only_what_it_is_told() -> None:
    with PlatformSimulator() as sim:
        answer = httpx.delete(
            f"{sim.url}/v21.0/111_3", headers={"Authorization": "Bearer my-page-token"}
        )
        assert answer.json()["error"]["code"] == 190


def test_a_source_that_fails_leaves_the_request_strict() -> None:
    def broken() -> StackContents:
        raise ConnectionError("no stack yet")

    with PlatformSimulator(source=broken) as sim:
        answer = httpx.delete(
            f"{sim.url}/v21.0/111_3", headers={"Authorization": "Bearer my-page-token"}
        )
        assert answer.json()["error"]["code"] == 190
        assert sim.source_errors == 1
