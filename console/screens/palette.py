"""The ctrl+p palette provider, fed by the same registry as the footer and `?` help."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from console import keys as K


class RegistryCommands(Provider):
    """The ctrl+p palette, fed by the same registry as the footer and `?` help."""

    async def discover(self) -> Hits:
        app = self.app
        assert hasattr(app, "run_command")
        for c in K.COMMANDS:
            if not c.args:
                yield DiscoveryHit(f":{c.name}", lambda c=c: app.run_command(c.name), help=c.help)
        for name in app.theme_names:
            yield DiscoveryHit(f":theme {name}", lambda n=name: app.run_command(f"theme {n}"), help="Switch theme")

    async def search(self, query: str) -> Hits:
        app = self.app
        assert hasattr(app, "run_command")
        matcher = self.matcher(query)
        entries: list[tuple[str, str, Callable[[], Any]]] = []
        for c in K.COMMANDS:
            entries.append(
                (
                    f":{c.name} {c.args}".rstrip(),
                    c.help,
                    lambda c=c: app.run_command(f"{c.name} {query.partition(' ')[2]}" if c.args else c.name),
                )
            )
        for name in app.theme_names:
            entries.append((f":theme {name}", "Switch theme", lambda n=name: app.run_command(f"theme {n}")))
        for k in K.KEYS:
            if k.scope == "app" and k.id not in ("app.command", "app.filter", "app.back"):
                entries.append(
                    (
                        k.description,
                        f"{K.effective_keys(k, app.keymap)} · {k.help}",
                        lambda a=k.action: app.run_action(a),
                    )
                )
        for label, help_text, run in entries:
            score = matcher.match(label)
            if score > 0:
                yield Hit(score, matcher.highlight(label), run, help=help_text)
