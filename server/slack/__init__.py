"""The Slack face of `lantern serve`: pages in a channel thread, `@lantern` and `/lantern`, approvals
by button (server.slack.face), Block Kit built to fit and checked (server.slack.blocks).

Configured by the `slack:` section of the config (channel, user map) and two credentials from the
keyring (`lantern creds set slack-bot-token`, `lantern creds set slack-signing-secret`); without the
section the server has no Slack face and /slack/events answers 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from server.hub import Hub
    from server.slack.face import SlackFace

PATH = "/slack/events"
"""Where Slack sends events, slash commands and interactions (one Request URL for all three)."""


class SlackSetupError(Exception):
    """The Slack face is configured but cannot start (a credential is missing); one line."""


def face_of(hub: Hub) -> SlackFace | None:
    """The hub's Slack face, when one is installed."""
    from server.slack.face import SlackFace

    return next((w for w in hub.watchers if isinstance(w, SlackFace)), None)


def endpoint(hub: Hub) -> Callable[[Request], Awaitable[Response]]:
    """The /slack/events route: the installed face's bolt handler, or 404 when none is."""

    async def slack_events(request: Request) -> Response:
        from starlette.responses import JSONResponse

        face = face_of(hub)
        if face is None:
            return JSONResponse(
                {"error": "not-configured", "message": "this server has no Slack face (no `slack:` in its config)"},
                status_code=404,
            )
        return await face.endpoint(request)

    return slack_events


async def install(hub: Hub, cfg: Any) -> str | None:
    """Build the Slack face from `cfg.slack` and the keyring, and register it as a page watcher;
    returns the line to print (None when Slack is not configured)."""
    from server.slack.face import SlackFace
    from skills import credentials

    settings = getattr(cfg, "slack", None)
    if settings is None:
        return None
    secrets = {}
    for name in (settings.token_credential, settings.signing_credential):
        try:
            secrets[name] = credentials.resolve(name)
        except credentials.CredentialMissing as exc:
            raise SlackSetupError(f"the Slack face is configured but {exc}") from None
    face = SlackFace(
        hub,
        token=secrets[settings.token_credential],
        signing_secret=secrets[settings.signing_credential],
        channel=settings.channel,
        users=settings.users,
        api_url=settings.api_url,
        update_every_s=settings.update_every_s,
    )
    line = await face.start()
    hub.watchers.append(face)
    return f"{line}; events at {PATH}"
