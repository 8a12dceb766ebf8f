"""Users' own files as they come: small files shaped like two public card-fraud datasets,
read through the documented mapping (value maps, derivations, a fixed label delay), down
to the records the stream would accept."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from infra.errors import ConfigurationError, InvalidInput
from replay.history import iter_transactions
from replay.mapping import load_mapping
from replay.validation import load_history
from streams.schema import Transaction

# Shaped like the public "credit card transactions" simulation (Sparkov): an unnamed index
# column, merchant names with spaces and commas, a category, integer card numbers, a
# hexadecimal transaction number and only a fraud flag (no label time).
SPARKOV = """\
,trans_date_trans_time,cc_num,merchant,category,amt,first,trans_num,is_fraud
0,2019-01-01 00:00:18,2703186189652095,"fraud_Rippin, Kub and Mann",misc_net,4.97,J,0b242a,0
1,2019-01-01 00:00:44,630423337322,"fraud_Heller, Gutmann and Zieme",grocery_pos,107.23,A,1f7652,0
2,2019-01-01 00:00:51,38859492057661,fraud_Lind-Buckridge,entertainment,220.11,E,a1a22d,0
3,2019-01-01 00:01:16,3534093764340240,"fraud_Kutch, Hermiston and Farrell",gas_transport,0,J,6b84,0
4,2019-01-01 00:03:06,4992346398065154184,fraud_Keeling-Crist,shopping_net,41.96,T,a41d75,1
5,2019-01-01 00:04:08,630423337322,"fraud_Kutch, Hermiston and Farrell",grocery_net,94.63,A,189a84,1
"""
SPARKOV_MAPPING = """\
columns:
  trans_num: transaction_id
  trans_date_trans_time: event_time
  cc_num: card_id
  merchant: merchant_id
  amt: amount
derive:
  channel: {from: category, map: {"*_net": ecom}, default: pos}
  mcc:
    from: category
    map: {grocery_pos: "5411", grocery_net: "5411", gas_transport: "5541"}
    default: "5999"
  country: US
  currency: {value: USD}
label_delay_days: 7
"""

# Shaped like the simulated dataset of the Fraud Detection Handbook: integer customers and
# terminals, a fraud flag, no transaction id and no label time.
HANDBOOK = """\
TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD
2018-04-01 00:00:31,596,3156,57.16,0
2018-04-01 00:02:10,4961,3412,81.51,0
2018-04-01 00:07:56,2,1365,146.00,0
2018-04-01 00:09:29,4128,8737,64.49,1
2018-04-01 00:10:34,927,9906,50.99,0
"""
HANDBOOK_MAPPING = {
    "columns": {"TX_DATETIME": "event_time", "CUSTOMER_ID": "card_id",
                "TERMINAL_ID": "terminal_id", "TX_AMOUNT": "amount", "TX_FRAUD": "is_fraud"},
    "derive": {"transaction_id": {"row_number": True}},
}


def files(folder: Path, name: str, data: str, mapping: str | dict[str, object]
          ) -> tuple[Path, Path]:
    csv = folder / f"{name}.csv"
    csv.write_text(data)
    if isinstance(mapping, dict):
        path = folder / f"{name}.json"
        path.write_text(json.dumps(mapping))
    else:
        path = folder / f"{name}.yaml"
        path.write_text(mapping)
    return csv, path


def test_a_category_becomes_channel_and_mcc_and_names_stay_ids(tmp_path: Path) -> None:
    csv, mapping = files(tmp_path, "sparkov", SPARKOV, SPARKOV_MAPPING)
    history = load_history(csv, load_mapping(mapping))
    assert history["channel"].tolist() == ["ecom", "pos", "pos", "pos", "ecom", "ecom"]
    assert history["mcc"].tolist() == ["5999", "5411", "5999", "5541", "5999", "5411"]
    assert set(history["country"]) == {"US"} and set(history["currency"]) == {"USD"}
    assert history.loc[3, "merchant_id"] == "fraud_Kutch, Hermiston and Farrell"
    assert history.loc[3, "amount"] == 0.0  # a zero amount is a valid transaction
    assert history["card_id"].iloc[4] == "4992346398065154184"  # 19 digits, exact
    assert history["is_fraud"].tolist() == [False] * 4 + [True] * 2
    delay = history["label_time"] - history["event_time"]
    assert (delay == pd.Timedelta(days=7)).all()
    assert history.attrs["integer_ids"] == ("card_id",)  # trans_num is hexadecimal text
    records = list(iter_transactions(history))
    for record in records:  # what `replay publish` sends: the stream's own rules accept it
        Transaction.model_validate(record)
    assert records[3]["merchant_id"] == "fraud_Kutch, Hermiston and Farrell"
    assert records[3]["amount"] == 0.0


def test_a_file_without_ids_or_label_times(tmp_path: Path) -> None:
    csv, mapping = files(tmp_path, "handbook", HANDBOOK, HANDBOOK_MAPPING)
    history = load_history(csv, load_mapping(mapping, label_delay_days=7))
    assert history["transaction_id"].tolist() == ["1", "2", "3", "4", "5"]
    assert history["merchant_id"].tolist() == history["terminal_id"].tolist()
    assert history["card_id"].tolist() == ["596", "4961", "2", "4128", "927"]
    assert history["label_time"].iloc[3] == pd.Timestamp("2018-04-08 00:09:29", tz="UTC")
    assert history.attrs["integer_ids"] == ("transaction_id", "card_id")
    for record in iter_transactions(history):
        Transaction.model_validate(record)


def test_flags_derive_and_override_the_file(tmp_path: Path) -> None:
    csv, mapping = files(tmp_path, "sparkov", SPARKOV, SPARKOV_MAPPING)
    flagged = load_mapping(mapping, derive=["channel=category:*_pos=pos,*=ecom"],
                           values=["country=CA"])
    history = load_history(csv, flagged)
    assert history["channel"].tolist() == ["ecom", "pos", "ecom", "ecom", "ecom", "ecom"]
    assert set(history["country"]) == {"CA"}
    assert history["mcc"].iloc[1] == "5411"  # the file's other derivations stay
    renamed = load_mapping(mapping, ["first=device_id", "category=scenario"])
    assert load_history(csv, renamed)["scenario"].iloc[0] == "misc_net"
    as_column = load_mapping(mapping, ["category=channel"])  # --map replaces a derivation
    assert "channel" not in as_column.derive and as_column.columns["category"] == "channel"


def test_exact_values_win_over_patterns_and_unmatched_values_are_kept(tmp_path: Path
                                                                      ) -> None:
    data = "id,t,card,shop,amt,fraud,kind\n" + "".join(
        f"t{i},2025-01-06 10:00:0{i},c,s,1,0,{k}\n"
        for i, k in enumerate(["atm_net", "shop_net", "MOTO", "", "pos"]))
    mapping = {"columns": {"id": "transaction_id", "t": "event_time", "card": "card_id",
                           "shop": "merchant_id", "amt": "amount", "fraud": "is_fraud"},
               "derive": {"channel": {"from": "kind", "map": {"*_net": "ecom",
                                                             "atm_net": "atm"}}}}
    csv, path = files(tmp_path, "kinds", data, mapping)
    history = load_history(csv, load_mapping(path))
    # exact 'atm_net' before the pattern; 'MOTO' kept (then lower-cased like any channel);
    # a blank keeps the field's default
    assert history["channel"].tolist() == ["atm", "ecom", "moto", "pos", "pos"]


def test_bad_derived_values_name_the_column(tmp_path: Path) -> None:
    csv, mapping = files(tmp_path, "sparkov", SPARKOV, SPARKOV_MAPPING)
    unmapped = load_mapping(mapping, derive=["channel=category:misc_net=ecom"])
    with pytest.raises(InvalidInput) as info:
        load_history(csv, unmapped)
    message = str(info.value)
    assert "column 'category' (channel, derived): invalid channel" in message
    assert "row 2: 'grocery_pos'" in message and "5 row(s)" in message
    with pytest.raises(InvalidInput, match=r"constant 'USA' \(country, derived\)"):
        load_history(csv, load_mapping(mapping, values=["country=USA"]))
    with pytest.raises(InvalidInput, match=r"'kategory' \(to derive channel\)"):
        load_history(csv, load_mapping(mapping, derive=["channel=kategory:"]))


@pytest.mark.parametrize(("derive", "message"), [
    ({"amount": {"from": "x"}}, "derivation of 'amount' from column 'x': only"),
    ({"channel": {"map": {"a": "pos"}}}, "derivation of 'channel': give exactly one of"),
    ({"channel": {"from": "c", "value": "pos"}}, "give exactly one of"),
    ({"channel": {"value": "pos", "default": "pos"}}, "'map' and 'default' need 'from'"),
    ({"channel": {"from": "c", "maps": {}}}, r"derive.channel: unknown key\(s\) \['maps'\]"),
    ({"channel": {"from": "c", "map": ["pos"]}}, "derive.channel.map must map"),
    ({"channel": {"from": "c", "map": {"a": ["pos"]}}}, "derive.channel: expected a single"),
    ({"channel": None}, "derive.channel: give a value"),
    ({"amount": "3"}, "only"),
])
def test_bad_derivations_in_a_file(tmp_path: Path, derive: dict[str, object],
                                   message: str) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"derive": derive}))
    with pytest.raises(ConfigurationError, match=message):
        load_mapping(path)


@pytest.mark.parametrize(("flags", "message"), [
    ({"derive": ["channel=category"]}, "--derive expects field=COLUMN:"),
    ({"derive": ["=category:a=b"]}, "--derive expects"),
    ({"derive": ["channel=category:a"]}, "--derive expects"),
    ({"values": ["country"]}, "--value expects field=VALUE"),
    ({"values": ["country=US"], "pairs": ["CTRY=country"]},
     "field 'country' is both mapped \\(column 'CTRY'\\) and derived \\(from constant 'US'\\)"),
])
def test_bad_derivation_flags(flags: dict[str, list[str]], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_mapping(None, flags.get("pairs", ()), derive=flags.get("derive", ()),
                     values=flags.get("values", ()))


def test_parquet_ids_keep_their_type(tmp_path: Path) -> None:
    frame = pd.read_csv(tmp_path / files(tmp_path, "h", HANDBOOK, HANDBOOK_MAPPING)[0])
    frame["TX_ID"] = [f"{i}" for i in range(5)]  # digits, but stored as text
    frame.to_parquet(tmp_path / "h.parquet")
    mapping = load_mapping(tmp_path / "h.json", ["TX_ID=transaction_id"])
    history = load_history(tmp_path / "h.parquet", mapping)
    assert history.attrs["integer_ids"] == ("card_id",)  # CUSTOMER_ID is int64 there
    assert history["card_id"].iloc[0] == "596"


def test_a_derivation_is_filed_under_its_own_field() -> None:
    from replay.mapping import ColumnMapping, Derivation

    with pytest.raises(ConfigurationError, match="name another target field"):
        ColumnMapping(derive={"mcc": Derivation("channel", value="pos")})


def test_merchant_ids_are_1_to_128_printable_characters(tmp_path: Path) -> None:
    longest = "Café Müller, Söhne & Co. — 東京 " + "x" * 98  # 128 characters
    assert len(longest) == 128
    frame = pd.DataFrame({"ID": ["t1", "t2", "t3", "t4"],
                          "WHEN": [f"2025-01-06 10:00:0{i}" for i in range(4)],
                          "CARD": "c1", "AMT": 1.0, "FRAUD": 0,
                          "SHOP": [longest, "  padded name  ", longest + "y", "tab\there"]})
    frame.to_parquet(tmp_path / "f.parquet")
    mapping = load_mapping(None, ["ID=transaction_id", "WHEN=event_time", "CARD=card_id",
                                  "AMT=amount", "FRAUD=is_fraud", "SHOP=merchant_id"])
    with pytest.raises(InvalidInput) as info:
        load_history(tmp_path / "f.parquet", mapping)
    message = str(info.value)
    assert "column 'SHOP' (merchant_id): not an id (1-128 printable characters) in 2 row(s)" \
        in message and "row 3" in message and "row 4: 'tab\\there'" in message
    frame.head(2).to_parquet(tmp_path / "ok.parquet")
    history = load_history(tmp_path / "ok.parquet", mapping)
    assert history["merchant_id"].tolist() == [longest, "padded name"]
    for record in iter_transactions(history):
        Transaction.model_validate(record)
