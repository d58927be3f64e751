"""Facebook Page posts: ``DELETE /{version}/{page-post-id}`` with the Page token."""

from __future__ import annotations

from dataclasses import dataclass

from mls_sync.platforms.graph import GraphClient


@dataclass
class FacebookClient(GraphClient):
    """Success is exactly ``{"success": true}``; ``{"success": false}`` is a failure."""

    platform: str = "facebook"
