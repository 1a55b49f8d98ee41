"""Configuration: command line over environment over config file over built-in defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

PROVIDER_KEYS: list[tuple[str, str]] = [
    ("ANTHROPIC_API_KEY", "anthropic/claude-sonnet-4-5"),
    ("OPENAI_API_KEY", "openai/gpt-4o-mini"),
    ("GEMINI_API_KEY", "gemini/gemini-2.0-flash"),
]
"""Environment variable → default model for that provider, in order of preference."""


class ConfigError(Exception):
    """The config file is unreadable or invalid; the message names the file and field."""


class UnreadableFile(ValueError):
    """A settings file that cannot be read as text: the message names the file and what to fix."""

    def __init__(self, path: Path, line: int | None, reason: str) -> None:
        self.path, self.line, self.reason = path, line, reason
        super().__init__(f"{path}{f':{line}' if line else ''}: {reason}")


def read_text_file(path: Path) -> str:
    """A settings file's text, or UnreadableFile (not UTF-8, a directory, unreadable)."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise UnreadableFile(
            path, None, "is a directory, not a file; remove it or put the settings in a file of that name"
        ) from None
    except OSError as exc:
        raise UnreadableFile(path, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UnreadableFile(
            path, line, f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
        ) from None


def lantern_home() -> Path:
    """The directory for Lantern's data: $LANTERN_HOME, else ~/.local/share/lantern."""
    home = os.environ.get("LANTERN_HOME")
    if home:
        return Path(home)
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "lantern"


def cache_dir() -> Path:
    """Where big downloads (model, sandbox binaries, index) live: $LANTERN_CACHE, else ~/.cache/lantern."""
    c = os.environ.get("LANTERN_CACHE")
    return Path(c) if c else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lantern"


def config_path() -> Path:
    """The user's config file."""
    p = os.environ.get("LANTERN_CONFIG")
    if p:
        return Path(p)
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "lantern" / "config.yaml"


class SlackSettings(BaseModel):
    """The Slack face of `lantern serve` (server/slack): where pages go and who is who. The bot token
    and the signing secret are never here: they are credentials (`lantern creds set NAME`)."""

    model_config = ConfigDict(extra="forbid")

    channel: str
    """The channel pages are posted to (its id, e.g. C0123ABCD; the bot must be a member)."""
    users: dict[str, str] = Field(default_factory=dict)
    """Slack user id → Lantern user name (`lantern serve users link-slack` keeps links in the store too)."""
    token_credential: str = "slack-bot-token"
    """The credential holding the bot token (xoxb-…)."""
    signing_credential: str = "slack-signing-secret"
    """The credential holding the app's signing secret."""
    api_url: str = "https://slack.com/api/"
    """The Web API's base URL."""
    update_every_s: float = 1.0
    """At most one update of a turn's status message this often."""


class Config(BaseModel):
    """Everything a run needs to know, after merging the sources."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    """'local', 'scripted:PATH', or a litellm model id (anthropic/..., openai/..., gemini/..., ollama/...)."""
    ollama_url: str | None = None
    """Base URL of an Ollama server, e.g. http://127.0.0.1:11434."""
    context: str | None = None
    """Kube context; None means the sandbox when no kubeconfig exists."""
    namespace: str | None = None
    """Default namespace."""
    user: str = Field(default_factory=lambda: os.environ.get("USER", "operator"))
    """Who is at the keyboard (policy overrides, audit rows)."""
    policy: str | None = None
    """Org policy file."""
    user_policy: str | None = None
    """Per-user override policy file."""
    skills_dirs: list[str] = Field(default_factory=list)
    """Extra directories of skill packs."""
    theme: str = "lantern-dark"
    """Console theme."""
    keymap: dict[str, str] = Field(default_factory=dict)
    """Binding id → keys, overriding the defaults."""
    max_steps: int = 12
    """Model steps per turn."""
    sandbox_on_exit: Literal["keep", "stop"] = "keep"
    """What quitting the console does to a sandbox cluster that it started: keep it running (and
    say how to stop it) or stop it."""
    context_share: float = 0.6
    """Share of the model's window the prompt may use."""
    read_only: bool = False
    """Block every write and dangerous action before policy; the agent can only propose."""
    store: str | None = None
    """Where sessions and the audit live: a SQLite file path (default $LANTERN_HOME/lantern.db)
    or postgresql://USER@HOST:PORT/DATABASE for a team's database."""
    slack: SlackSettings | None = None
    """The Slack face of `lantern serve`, when set."""


def load(path: Path | None = None, **overrides: Any) -> Config:
    """Read the config file (if any), apply environment and explicit overrides."""
    p = path or config_path()
    data: dict[str, Any] = {}
    if p.exists():
        try:
            raw = yaml.safe_load(read_text_file(p)) or {}
        except UnreadableFile as exc:
            raise ConfigError(str(exc)) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{p}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
        data.update(raw)
    env_map = {
        "LANTERN_MODEL": "model",
        "OLLAMA_HOST": "ollama_url",
        "LANTERN_CONTEXT": "context",
        "LANTERN_USER": "user",
        "LANTERN_STORE": "store",
    }
    for var, key in env_map.items():
        if os.environ.get(var):
            data[key] = os.environ[var]
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"{p}: field '{field}': {first['msg']}") from None


def configured_store() -> str | None:
    """The store named by LANTERN_STORE or the config file's `store:` key, if any. Read on its own
    (a config file with another broken field still names its store; `load` reports that field)."""
    env = os.environ.get("LANTERN_STORE")
    if env:
        return env
    p = config_path()
    try:
        raw = yaml.safe_load(read_text_file(p)) if p.is_file() else None
    except (UnreadableFile, yaml.YAMLError):
        return None
    value = raw.get("store") if isinstance(raw, dict) else None
    return str(value) if value else None


def resolve_model(cfg: Config) -> str:
    """Which model to use: explicit choice, else a provider whose key is set, else Ollama, else local."""
    if cfg.model:
        return cfg.model
    for var, model in PROVIDER_KEYS:
        if os.environ.get(var):
            return model
    if cfg.ollama_url:
        return "ollama/qwen2.5:7b"
    return "local"
