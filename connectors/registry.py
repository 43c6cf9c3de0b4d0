"""Which module speaks which CRM. Each module provides ``KIND``, ``DEFAULT_BASE_URL``,
``build_client(...)`` and one ``Connector`` subclass; each sandbox module ``create_app``."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import httpx
from fastapi import FastAPI

from connectors.base import Connector
from connectors.sandbox.common import SandboxState

CRM_KINDS = ("hubspot", "salesforce", "pipedrive")
_CONNECTOR_CLASS = {
    "hubspot": "HubSpotConnector",
    "salesforce": "SalesforceConnector",
    "pipedrive": "PipedriveConnector",
}


def module(kind: str) -> ModuleType:
    if kind not in CRM_KINDS:
        raise ValueError(f"unknown CRM kind {kind!r} (one of {', '.join(CRM_KINDS)})")
    return importlib.import_module(f"connectors.{kind}")


def connector_for(
    kind: str,
    *,
    base_url: str | None,
    credentials: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    on_refresh: Callable[[dict[str, Any]], None] | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
    request_guard: Callable[[str], None] | None = None,
) -> Connector:
    """The connector of ``kind``; ``request_guard`` sees every request's URL before it is
    sent (and raises to refuse it), from the first request on."""
    mod = module(kind)
    client = mod.build_client(
        base_url=base_url,
        credentials=credentials,
        on_refresh=on_refresh,
        transport=transport,
        sleep=sleep,
    )
    if request_guard is not None:
        client.guard_requests(request_guard)
    connector: Connector = getattr(mod, _CONNECTOR_CLASS[kind])(client, config)
    return connector


def sandbox_app(kind: str, state: SandboxState, **kwargs: Any) -> FastAPI:
    if kind not in CRM_KINDS:
        raise ValueError(f"unknown CRM kind {kind!r} (one of {', '.join(CRM_KINDS)})")
    app: FastAPI = importlib.import_module(f"connectors.sandbox.{kind}").create_app(state, **kwargs)
    return app
