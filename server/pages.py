"""Pages: an alert group from a pager (Alertmanager's webhook, or a generic JSON sender) that opens
or closes an investigation, and the faces that want to hear of it (the chat face posts it to a
channel and works in its thread).

The seam between the two: the webhook (server/hooks.py) turns a notification into a `Page`,
opens or finds the group's session, and calls `Hub.announce(live, page)`; every `PageWatcher`
registered on the hub (`hub.watchers`) is told, in order, and a watcher that fails is logged,
never allowed to stop the page or the other watchers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from server.hub import LiveSession


@dataclass(frozen=True)
class Page:
    """One notification about one alert group."""

    source: str
    """"alertmanager" or "generic"."""
    group_key: str
    """What deduplicates: one investigation per group key."""
    status: str
    """"firing" or "resolved"."""
    title: str
    """One line: the alert name and what it is about."""
    labels: dict[str, str] = field(default_factory=dict)
    """The group's common labels (severity, namespace, pod, ...)."""
    annotations: dict[str, str] = field(default_factory=dict)
    """The common annotations (summary, description)."""
    runbook_url: str = ""
    alerts: tuple[dict[str, Any], ...] = ()
    """Each alert of the group as the sender gave it (labels, annotations, startsAt, ...)."""
    received_at: float = 0.0
    """When the server received it (Unix seconds)."""


class PageWatcher(Protocol):
    """A face that hears of pages (the Slack face)."""

    async def page_opened(self, live: LiveSession, page: Page) -> None:
        """A firing page opened `live` (before its first turn runs, so the face can attach and see it all)."""

    async def page_resolved(self, live: LiveSession, page: Page) -> None:
        """The group's resolved notification arrived; the session is marked resolved."""
