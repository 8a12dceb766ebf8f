"""Column mappings: files (YAML/TOML/JSON), --map flags, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.errors import ConfigurationError
from replay.mapping import ColumnMapping, load_mapping, parse_pairs


def test_yaml_toml_json_and_flags_agree(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("columns:\n  ID: transaction_id\nlabel_delay_days: 3\n")
    (tmp_path / "m.toml").write_text('label_delay_days = 3\n[columns]\nID = "transaction_id"\n')
    (tmp_path / "m.json").write_text(json.dumps({"columns": {"ID": "transaction_id"},
                                                 "label_delay_days": 3}))
    loaded = [load_mapping(tmp_path / f"m.{ext}") for ext in ("yaml", "toml", "json")]
    assert loaded[0] == loaded[1] == loaded[2]
    assert dict(loaded[0].columns) == {"ID": "transaction_id"}
    flags = load_mapping(None, ["ID=transaction_id"], label_delay_days=3)
    assert flags == loaded[0]


def test_flags_override_file_and_delay_flag(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("columns:\n  A: card_id\n")
    mapping = load_mapping(tmp_path / "m.yaml", ["B=amount"], label_delay_days=1.5)
    assert dict(mapping.columns) == {"A": "card_id", "B": "amount"}
    assert mapping.label_delay_days == 1.5


def test_source_of_prefers_mapping_then_same_name() -> None:
    mapping = ColumnMapping({"AMT": "amount", "card_id": "merchant_id"})
    cols = ["AMT", "card_id", "amount", "event_time"]
    assert mapping.source_of("amount", cols) == "AMT"
    assert mapping.source_of("event_time", cols) == "event_time"
    assert mapping.source_of("merchant_id", cols) == "card_id"
    assert mapping.source_of("card_id", cols) is None  # that column is mapped elsewhere


@pytest.mark.parametrize(("pairs", "message"), [
    (["X=nonsense"], "unknown field"),
    (["A=amount", "B=amount"], "both mapped to 'amount'"),
    (["just_a_column"], "YOUR_COLUMN=field"),
])
def test_bad_flags(pairs: list[str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_mapping(None, pairs)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_mapping(tmp_path / "missing.yaml")
    (tmp_path / "m.yaml").write_text("colums: {}\n")
    with pytest.raises(ConfigurationError, match="unknown key"):
        load_mapping(tmp_path / "m.yaml")
    (tmp_path / "m.txt").write_text("")
    with pytest.raises(ConfigurationError, match=".yaml, .yml, .toml or .json"):
        load_mapping(tmp_path / "m.txt")
    (tmp_path / "d.yaml").write_text("defaults: {amount: 3}\n")
    with pytest.raises(ConfigurationError, match="defaults only apply"):
        load_mapping(tmp_path / "d.yaml")


def test_parse_pairs_strips() -> None:
    assert parse_pairs([" A = card_id "]) == {"A": "card_id"}


def test_derivations_agree_across_yaml_toml_json_and_flags(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        'derive:\n  channel: {from: cat, map: {"*_net": ecom, "*": pos}}\n  country: US\n')
    (tmp_path / "m.toml").write_text(
        '[derive]\ncountry = "US"\n[derive.channel]\nfrom = "cat"\n'
        '[derive.channel.map]\n"*_net" = "ecom"\n"*" = "pos"\n')
    (tmp_path / "m.json").write_text(json.dumps(
        {"derive": {"channel": {"from": "cat", "map": {"*_net": "ecom", "*": "pos"}},
                    "country": {"value": "US"}}}))
    loaded = [load_mapping(tmp_path / f"m.{ext}") for ext in ("yaml", "toml", "json")]
    flags = load_mapping(None, derive=["channel=cat:*_net=ecom,*=pos"], values=["country=US"])
    assert loaded[0] == loaded[1] == loaded[2] == flags
    assert loaded[0].derive["channel"].rules == (("*_net", "ecom"), ("*", "pos"))
