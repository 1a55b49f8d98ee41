"""The Kubernetes client the kubernetes pack's functions get: from the user's kubeconfig/context, built
lazily, cached per context, with the server version at hand for APIs old clusters lack."""

from __future__ import annotations

import json
import os
import threading
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

_cache: dict[tuple[str | None, str], Kube] = {}
_lock = threading.Lock()


class NotAvailable(Exception):
    """The cluster's API server does not serve this API (too old, or the kind is not installed)."""


class NotFound(Exception):
    """An object is not there; the message says what is (the pods of a workload by that name)."""

    status = 404


class KubeConfigMissing(Exception):
    """No kubeconfig holds the requested context."""


def kubeconfig_files() -> list[Path]:
    """Where contexts are looked for: $KUBECONFIG (its list), ~/.kube/config, the sandbox's kubeconfig."""
    files: list[Path] = []
    env = os.environ.get("KUBECONFIG")
    if env:
        files += [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    else:
        files.append(Path.home() / ".kube" / "config")
    from engine.config import lantern_home

    files.append(lantern_home() / "sandbox" / "kubeconfig")
    return [f for f in files if f.is_file()]


def _contexts(path: Path) -> tuple[list[str], str | None]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return [], None
    names = [c.get("name") for c in data.get("contexts") or [] if isinstance(c, dict)]
    return [n for n in names if n], data.get("current-context")


def find_kubeconfig(context: str | None) -> tuple[Path, str | None]:
    """The kubeconfig file that holds `context` (or the first with a current context when None)."""
    files = kubeconfig_files()
    for f in files:
        names, current = _contexts(f)
        if context is None and current:
            return f, current
        if context is not None and context in names:
            return f, context
    looked = ", ".join(str(f) for f in files) or "no kubeconfig files found"
    if context:
        raise KubeConfigMissing(
            f"kube context {context!r} not found (looked in: {looked}); start the sandbox with `lantern sandbox up` or pick a context with --context"
        )
    raise KubeConfigMissing(
        f"no kubeconfig with a current context (looked in: {looked}); start the sandbox with `lantern sandbox up`"
    )


class Kube:
    """API handles for one context: core, apps, dynamic, and the server version."""

    def __init__(self, context: str | None, kubeconfig: Path) -> None:
        from kubernetes import config

        self.context = context
        """The context name."""
        self.kubeconfig = kubeconfig
        """The file it came from."""
        self.api = config.new_client_from_config(config_file=str(kubeconfig), context=context)
        """The ApiClient."""

    @cached_property
    def core(self) -> Any:
        """CoreV1Api."""
        from kubernetes import client

        return client.CoreV1Api(self.api)

    @cached_property
    def apps(self) -> Any:
        """AppsV1Api."""
        from kubernetes import client

        return client.AppsV1Api(self.api)

    @cached_property
    def dynamic(self) -> Any:
        """A DynamicClient (discovery happens on first use)."""
        from kubernetes.dynamic import DynamicClient

        return DynamicClient(self.api)

    @cached_property
    def version(self) -> tuple[int, int]:
        """(major, minor) of the API server."""
        from kubernetes import client

        info = client.VersionApi(self.api).get_code()
        minor = "".join(ch for ch in info.minor if ch.isdigit()) or "0"
        return int(info.major), int(minor)

    @property
    def version_text(self) -> str:
        """'v1.20' style."""
        major, minor = self.version
        return f"v{major}.{minor}"

    def serialize(self, obj: Any) -> Any:
        """A client model object as plain JSON data (camelCase keys, as the API speaks)."""
        return self.api.sanitize_for_serialization(obj)


def kube_for(context: str | None = None) -> Kube:
    """The cached Kube for `context` (None: $LANTERN_CONTEXT, else the kubeconfig's current context)."""
    context = context or os.environ.get("LANTERN_CONTEXT") or None
    path, resolved = find_kubeconfig(context)
    key = (resolved, str(path))
    with _lock:
        kube = _cache.get(key)
        if kube is None:
            kube = Kube(resolved, path)
            _cache[key] = kube
        return kube


def clear_cache() -> None:
    """Forget built clients (after a kubeconfig changes)."""
    with _lock:
        _cache.clear()


def explain(exc: BaseException) -> str:
    """A short, secret-free description of a failure for the model and the operator."""
    try:
        from kubernetes.client.exceptions import ApiException
        from kubernetes.config.config_exception import ConfigException
    except ImportError:  # pragma: no cover - kubernetes is a dependency
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ApiException):
        message = ""
        reason = exc.reason or ""
        try:
            body = json.loads(exc.body or "{}")
            message = body.get("message") or ""
            reason = body.get("reason") or reason
        except (ValueError, TypeError, AttributeError):
            message = str(exc.body or "")[:300]
        hint = ""
        if exc.status == 403:
            hint = " (the kube user lacks this permission)"
        elif exc.status == 404 and not message:
            message = "not found"
        return f"{reason or 'Error'} (HTTP {exc.status}): {message}{hint}"
    if isinstance(exc, (KubeConfigMissing, NotAvailable, NotFound)) or getattr(exc, "plain", False):
        return str(exc)
    if isinstance(exc, ConfigException):
        return f"kubeconfig problem: {exc}"
    text = str(exc)
    # only the kubernetes client's transport (urllib3) means the API server; other refusals are the target's
    if type(exc).__module__.startswith("urllib3") and (
        "Connection refused" in text or "Max retries exceeded" in text or "NewConnectionError" in text
    ):
        return "cannot reach the Kubernetes API server (is the cluster up? try `lantern sandbox status`)"
    return f"{type(exc).__name__}: {text}"


class LazyKube:
    """Stands in for `kube_for(context)` until first used, so functions that never touch the cluster
    (a TLS check of host:port) work without a kubeconfig."""

    def __init__(self, context: str | None) -> None:
        self._context = context
        self._real: Kube | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._real is None:
            self._real = kube_for(self._context)
        return getattr(self._real, name)
