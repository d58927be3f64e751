"""Instagram media through the Graph API on the Facebook Login path.

Deleting IG media through the API is possible only for accounts connected with Facebook
Login (since December 2025, needs ``instagram_manage_contents``). Accounts connected with
Instagram Login (graph.instagram.com) answer "Unsupported delete request", so we do not
call at all and hand the post to a person, with its permalink.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mls_sync.platforms.base import AccountRef, NotSupported, Outcome, PostRef
from mls_sync.platforms.graph import GraphClient


@dataclass
class InstagramClient(GraphClient):
    platform: str = "instagram"

    def _before_delete(self, account: AccountRef, post: PostRef) -> Outcome | None:
        if account.connected_via == "facebook_login":
            return None
        via = account.connected_via or "an unknown login"
        return NotSupported(
            reason=(
                f"Instagram account connected via {via}: the API cannot delete its media;"
                " delete it by hand"
            ),
            permalink=post.permalink,
        )

    def _success(self, body: dict[str, Any], post: PostRef) -> bool:
        # {"success": true, "deleted_id": "..."}; a deleted_id naming another object is not
        # our delete.
        if body.get("success") is not True:
            return False
        deleted_id = body.get("deleted_id")
        return deleted_id is None or str(deleted_id) == post.platform_post_id
