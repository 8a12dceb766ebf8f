from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from infra.settings import Settings
from infra.workers import settings_env


def test_a_child_process_rebuilds_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        state_dir=Path("state"), kafka_bootstrap="h1:9092,h2:9092", redis_password=SecretStr("s3")
    )
    env = settings_env(settings)
    for key in [k for k in env if not k.startswith("FRAUDSTREAM_")]:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    rebuilt = Settings()
    assert rebuilt == settings
    assert rebuilt.redis_password is not None
    assert rebuilt.redis_password.get_secret_value() == "s3"
