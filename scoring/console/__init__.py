"""The analyst console (placeholder while it is built)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from infra.settings import Settings
from scoring.api_keys import KeyStore


def mount_console(app: FastAPI, settings: Settings, keys: KeyStore) -> tuple[Any, Any]:
    async def start(app: FastAPI) -> None:
        return None

    async def stop(app: FastAPI) -> None:
        return None

    return start, stop
