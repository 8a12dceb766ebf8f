"""CLI conventions: help on every command and option, --version, -v anywhere, exit codes
0 / 1 / 2, ``config`` redacts secrets, ``services status`` fails when a service is down."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.cli import build_parser, main


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", "API_KEY", "KAFKA_BOOTSTRAP", "REDIS_URL"):
        monkeypatch.delenv(f"FRAUDSTREAM_{name}", raising=False)
    monkeypatch.setenv("FRAUDSTREAM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FRAUDSTREAM_KAFKA_PORT", str(_free_port()))
    monkeypatch.setenv("FRAUDSTREAM_KAFKA_CONTROLLER_PORT", str(_free_port()))
    monkeypatch.setenv("FRAUDSTREAM_REDIS_PORT", str(_free_port()))


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
             ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, (*path, name))


def test_every_command_and_option_has_help_and_help_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen = 0
    for path, parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"{path} {choice.dest} has no help"
            elif not isinstance(action, argparse._HelpAction):
                assert action.help, f"{' '.join(path)} {action.option_strings or action.dest}"
        assert main([*path, "--help"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: fraudstream") and "exit codes:" in out
        assert "(default: None)" not in out and "(default: )" not in out
        seen += 1
    assert seen > 30  # the whole tree was walked, models and canary actions included
    assert main(["replay", "backtest", "--help"]) == 0
    assert "(default: 42.0)" in capsys.readouterr().out  # defaults are shown


def test_version_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("fraudstream ")
    assert main(["no-such-command"]) == 2
    assert main(["simulate"]) == 2  # --out missing
    assert main(["models", "promote", "1", "--alias", "nope"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_config_redacts_secrets_and_verbose_goes_anywhere(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FRAUDSTREAM_API_KEY", "s3cret-key")
    monkeypatch.setenv("FRAUDSTREAM_TOPIC_PARTITIONS", "6")
    for argv in (["config"], ["-v", "config"], ["config", "-v"], ["config", "--format", "json"]):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "s3cret-key" not in out and "**********" in out
        assert "6" in out
    assert main(["config"]) == 0
    assert "FRAUDSTREAM_TOPIC_PARTITIONS=6" in capsys.readouterr().out.splitlines()


def test_invalid_settings_exit_2(monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FRAUDSTREAM_TOPIC_PARTITIONS", "0")
    assert main(["config"]) == 2
    assert "FRAUDSTREAM_TOPIC_PARTITIONS" in capsys.readouterr().err


def test_runtime_failures_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["services", "status"]) == 1  # nothing runs on the test's ports
    assert "stopped" in capsys.readouterr().out
    assert main(["models", "rollback"]) == 1  # empty registry: no previous holder
    assert "no previous holder" in capsys.readouterr().err
    assert main(["models", "list"]) == 0
    assert main(["models", "canary", "step", "--decisions", "missing.jsonl"]) == 2
    assert main(["models", "canary", "step", "--every", "5", "--decisions", "d.jsonl"]) == 2
    assert "--every needs" in capsys.readouterr().err
