"""The feature core's outputs, frozen: optimisations must not change a single bit.

The vectorised twin the backtest uses (:mod:`features.vectorised`) must produce the same
digests on the same history: bit-identical to the core there, not just within tolerance.

Digests (SHA-256 of the float64 column bytes, and of the final card and terminal states'
JSON) were taken from the straightforward core before it was optimised. A failure here
means a feature value or the persisted state format changed: if that is intended (a new
feature definition, or the simulator changed), regenerate the digests with
``python -m tests.unit.test_features_frozen`` and say why in the commit. (The states digest
was retaken once, when the card state gained its ``xs`` flag; the states were otherwise
identical. Retaken again for the label-delay features: the 31 card and 9 terminal
features kept their digests; the two card label features and the eleven delayed terminal
features were added, the card state gained its known frauds ``k`` and the terminal state
its spans for the delayed windows.)
"""

from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import pandas as pd

from features.backfill import events_from_frame, labels_from_frame
from features.core import DAY_MS, FEATURE_NAMES, CardState, Event, FeatureCore, card_update
from features.vectorised import compute_features_vectorised
from replay.simulator import SimulationConfig, simulate

FROZEN: dict[str, str] = {
    "amount":
        "1e0aae8a627736e6868ac852acc4360de3fee82d17f3bf4b5276755eec80bcfe",
    "amount_log":
        "f51be83de6010b00f144b9dc1019fac779c9ca7769a326503318a11d1a060dd6",
    "is_night":
        "4c396264978908ba661c148ae40954b303ac3f054c2ff833c1495e373c8d3ce0",
    "is_weekend":
        "8bb3ff3ebc04ebf7f715c0496cd31de064703d8ed70c8762bcbccf48e3207173",
    "is_ecom":
        "11aa7afba231387052fa1623a3df225afa260beb5c99cba2d984c3b76c48ee15",
    "is_atm":
        "ec793064939ad121d279df0b4e45c8525f533cee5d000064697135b20602b3f7",
    "card_txn_count_10m":
        "b7cbf417484f876657390951027794fbbf8210bcef82513ddf2632d9f32789ed",
    "card_txn_count_1h":
        "996462cc0856c73d43583ce6171114d2abd9bd300cc9969a70a0038832d8a557",
    "card_txn_count_24h":
        "f87e79d66d930f588e4d4d69d48c8cf577727423f9e0a8f79288fd9d6b5c5b87",
    "card_txn_count_7d":
        "e3e86a76de19a88c75ca78fc4883be31493a1a7c2de1bc98189cf30969d0d5db",
    "card_txn_count_30d":
        "07b01795af2954f19ee557681ab9c795a62cd201694004d0ee884b8772d2d3b2",
    "card_amount_sum_10m":
        "2709347b4b09800c8109ab3e8ec78ab4a0ff8b15ae1d0eba5b41d247f4340b16",
    "card_amount_sum_1h":
        "2f9966dc35e07645ee1c5e9cb1f68dfe085cd5a1746d3bcf6c3167932ce4c9f8",
    "card_amount_sum_24h":
        "594bbb2f8e0d7bbe9c24be89020c9510f2441e32857d18a61f2636741ae7da48",
    "card_amount_sum_7d":
        "0b1a353fb869a149fdccef73b5feffc7db55618ad971f35a7c16b21c5dcfb4de",
    "card_amount_sum_30d":
        "637ce99746bc2cb82ada07d6a61128b1f528fdcc8b0bd579dbbb02f05d9897a3",
    "card_amount_mean_7d":
        "1d29cae86ab1ef31d7966b28c9fd19f44fd3f8a495654bd0385b54bebcc5a43d",
    "card_amount_mean_30d":
        "33f075b719a1a0f48326edd35736a51890cac29139037ef81d58c3a15458a1cb",
    "card_amount_zscore_30d":
        "20dbd0bd16bff0d6b351605f422e152c698aa9b75227de697b239ec91de91017",
    "card_amount_ratio_30d":
        "100f515fa02fdbdbc223c6716e6502fd75fba628b39af1270bbe9506478a26a2",
    "card_seconds_since_prev":
        "bf2d6b4c07c972e53c1521b3b3ee74e49503c86ba5c3c3207bd220282968b514",
    "card_distinct_merchants_24h":
        "f08247aa8029b34a7202d03fb1455d97302e2814610691ae9c9a94ada2611f70",
    "card_distinct_countries_24h":
        "fc486d7d37e78a6b0a225440ef063ae18b9c2f31145f16920915632e5e147592",
    "card_distinct_devices_24h":
        "dba3f537e6b68b89c25325fadec5c9247534c345a1d02a7f6bc67f3fb5ca044d",
    "card_new_merchant_30d":
        "c061dde76ed1ab0bb129bb9fc5948e7823a90a361eb61d6e7655a99cb43838bb",
    "card_new_device_30d":
        "a91ce8149e2ba4bb11263844f290867546842b09cd50e0e25d7c50df48e66be8",
    "card_new_country_30d":
        "937189d482c49beafae1e20db0dda9ae1e7b2b38a1b55b474b43e94096e3e283",
    "card_age_days":
        "444a9c354145c504b79eb1461adf4741215e0090b2f22480e4604a80fbe7ccc3",
    "card_profile_amount_ewm":
        "b05a06b316fea1b3db8bd6828fe5c2329b6fa7f40cb97d93fc696e26a8f6555f",
    "card_profile_ecom_share":
        "32286111afe7c85dfeb739fb8e1999f21bc3078ff534e05b2656c863c17ec571",
    "card_profile_night_share":
        "8fe00b9a89f1268f0e86d5f65e8d9dbf842f62d06b36e9cc84b50e42548d162f",
    "card_known_fraud_count_30d":
        "ead45b8d7340ef7609b5ac6dcbe90b7ac28881fb7987c6dabc9bc613cff26658",
    "card_known_compromised":
        "42b3c03489d2635a60249dbe4e5531587a41e3c0c7ea79b914b715daac15411b",
    "term_txn_count_1h":
        "b1dd8a712a41856da8aee877348bcfc32812d5fada918fc11ca685545e005e38",
    "term_txn_count_24h":
        "c2a902f47c4303c830f957ffaafbfb1c1a9ab8bcf292f30edd8ba5e8f5a72592",
    "term_txn_count_7d":
        "70784eaf8ed0428b919de878eabed8a6ee6feca8762fc9dd84392313a35857c3",
    "term_txn_count_30d":
        "7d7703c3f7bbd540bd0d6dc580296cea32aeab3dace4ea0c6b164409530fbd0e",
    "term_amount_mean_24h":
        "0b3ec85d04b98f450abad20d7d09f6c12033a13ef991c657af81b7666285e20c",
    "term_fraud_count_7d":
        "45dc05cad2b6982d11fcde84aa0273eba0eccd0190bc1550f4f10a5afb1094de",
    "term_fraud_count_30d":
        "2992421ac803b4d4a4db71f9f435efe9962a4cee201bbea0ea82b8a2977832f7",
    "term_fraud_rate_7d":
        "3e47b40ecde64ff253b9c2b1ca95b385ee69ea27ebdc3b27243760e593069a57",
    "term_fraud_rate_30d":
        "2dc211ebdb8868cb9d886ff7e866053c1919866bc70a21b6ec69d006786bd9cc",
    "term_txn_count_1d_delayed":
        "48821885b81c716da9fb43570aee00a50b69ecd058abf96f0c05b2968e055558",
    "term_txn_count_7d_delayed":
        "8e4bc64ba9fc0c755edda523e309f97a90c1e825cbf6a22e2bb5daeb9021fa6c",
    "term_txn_count_30d_delayed":
        "7176c79fe071a2a687a8d91cc5d5f947a5e867a999af823a3f15437921a0716f",
    "term_fraud_count_1d_delayed":
        "ab69070d4fefd77910c63b4063c3eb5b255d77b6c61dd9ffa1f4ed358aa2aacb",
    "term_fraud_count_7d_delayed":
        "9bc1132fa80d2101371802f906b73e7a0b7ea1c07a1293be57ecf7bce94f3c23",
    "term_fraud_count_30d_delayed":
        "12abe38059e9cf9b6be3438096c2493d091064866d21b74b6446d7d2995ae4e4",
    "term_fraud_rate_1d_delayed":
        "051ed9baa288fa5741111fc335669ee39e32e350685a6a014cd48946c4756fbd",
    "term_fraud_rate_7d_delayed":
        "5a3be5488969ca1009e88527cee953fa340a77496326164b75f810855cc9587a",
    "term_fraud_rate_30d_delayed":
        "73dfa05c22ae86fcbcf1f0bb0d677fc1ab19e5f76dce06d294ffb49cf0e491b2",
    "term_fraud_count_known_long":
        "7857dce8fa44c6b3a2bdec1ee6aa541436f2995f2a7b4305c78c8da300228f23",
    "_states":
        "17ebe29289aa695ed0c4a285996f0754625dcbbf37e7d2f85c84ac6973a5ce9d",
}


def _frame() -> pd.DataFrame:
    return simulate(SimulationConfig(n_customers=150, n_terminals=60, days=40, seed=23))


def _digests(matrix: np.ndarray) -> dict[str, str]:
    return {name: hashlib.sha256(np.ascontiguousarray(matrix[:, i]).tobytes()).hexdigest()
            for i, name in enumerate(FEATURE_NAMES)}


def _run() -> tuple[dict[str, str], str]:
    frame = _frame()
    core = FeatureCore()
    vectors = core.run(events_from_frame(frame), labels_from_frame(frame))
    matrix = np.array([vectors[t] for t in frame["transaction_id"].astype(str)],
                      dtype=np.float64)
    digests = _digests(matrix)
    states = json.dumps(
        [[k, core.cards[k].to_dict()] for k in sorted(core.cards)]
        + [[k, core.terminals[k].to_dict()] for k in sorted(core.terminals)])
    assert len(pd.unique(frame["transaction_id"])) == len(frame)
    return digests, hashlib.sha256(states.encode()).hexdigest()


def test_core_outputs_are_bit_identical_to_the_frozen_ones() -> None:
    digests, states = _run()
    changed = [name for name in FEATURE_NAMES if digests[name] != FROZEN[name]]
    assert not changed, f"feature values changed: {changed}"
    assert states == FROZEN["_states"], "final card/terminal states (or their format) changed"


def test_vectorised_twin_is_bit_identical_to_the_frozen_core_outputs() -> None:
    """The backtest's numpy twin (:mod:`features.vectorised`) reproduces the same bits."""
    matrix = compute_features_vectorised(_frame()).to_numpy(np.float64)
    digests = _digests(matrix)
    changed = [name for name in FEATURE_NAMES if digests[name] != FROZEN[name]]
    assert not changed, f"vectorised feature values differ from the core's: {changed}"


def test_txn_map_pruned_from_the_front_equals_a_full_scan() -> None:
    """Out-of-order and repeated ids mark the map unsorted; both prunes keep the same map."""
    rng = random.Random(5)  # noqa: S311 - test data
    fast, full = CardState(), CardState()
    t = 0
    for i in range(3000):
        t += rng.randrange(0, DAY_MS // 4)
        ms = t - rng.randrange(0, 3 * DAY_MS) if rng.random() < 0.02 else t
        tid = f"x{rng.randrange(i)}" if i and rng.random() < 0.01 else f"x{i}"
        event = Event(tid, ms, "c", f"m{i % 7}", 10.0, "pos", "FR", None, None)
        full.txns_sorted = False  # always the full scan
        fast, a = card_update(fast, event)
        full, b = card_update(full, event)
        assert a == b
        assert list(fast.txns.items()) == list(full.txns.items())
    assert not fast.txns_sorted
    restored = CardState.from_dict({k: v for k, v in fast.to_dict().items() if k != "xs"})
    assert not restored.txns_sorted  # a state without the flag (older format) is not trusted


if __name__ == "__main__":
    d, s = _run()
    print(json.dumps({**d, "_states": s}, indent=1))
