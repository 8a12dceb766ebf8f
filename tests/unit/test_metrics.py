"""Fraud metrics on tiny hand-checked examples, edge cases and a cross-check."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pandas as pd
import pytest

import models.metrics
import models.profile
from models.metrics import (
    alerts_per_day,
    amount_recall_at_budget,
    average_precision,
    card_precision_at_k,
    fraud_metrics,
    known_since_ms,
    recall_at_budget,
    roc_auc,
)


@pytest.mark.parametrize("module", [models.metrics, models.profile])
def test_doctests(module: object) -> None:
    failed, attempted = doctest.testmod(module, raise_on_error=False)  # type: ignore[arg-type]
    assert attempted > 0 and failed == 0


def test_roc_auc_known_values() -> None:
    assert roc_auc([0, 1], [0.1, 0.9]) == 1.0
    assert roc_auc([0, 1], [0.9, 0.1]) == 0.0
    # one fraud ties one genuine (half credit) and beats the other: (1 + 0.5) / 2
    assert roc_auc([0, 0, 1], [0.2, 0.5, 0.5]) == 0.75
    assert roc_auc([True, False, True], [3, 1, 2]) == 1.0  # bool labels, int scores


def test_average_precision_known_values() -> None:
    assert average_precision([1, 0, 0], [0.9, 0.5, 0.1]) == 1.0
    # ranks: genuine, fraud, fraud -> precision 1/2 at recall 1/2, 2/3 at recall 1
    assert average_precision([0, 1, 1], [0.9, 0.5, 0.1]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    assert average_precision([1, 1], [0.3, 0.2]) == 1.0  # no genuine: still defined


@pytest.mark.parametrize(
    "metric",
    [
        lambda y, s: roc_auc(y, s),
        lambda y, s: average_precision(y, s),
        lambda y, s: recall_at_budget(y, s, 0.5),
        lambda y, s: amount_recall_at_budget(y, s, [1.0] * len(y), 0.5),
    ],
)
def test_no_fraud_is_nan_not_zero(metric: object) -> None:
    assert math.isnan(metric([0, 0, 0], [0.1, 0.2, 0.3]))  # type: ignore[operator]
    assert math.isnan(metric([], []))  # type: ignore[operator]


def test_roc_auc_needs_both_classes() -> None:
    assert math.isnan(roc_auc([1, 1], [0.1, 0.2]))


def test_recall_at_budget_rounds_up_to_whole_alerts() -> None:
    y = np.zeros(100, dtype=int)
    y[:10] = 1
    score = np.linspace(1.0, 0.0, 100)  # frauds have the highest scores
    assert recall_at_budget(y, score, budget=0.07) == pytest.approx(0.7)  # 7 alerts, not 8
    assert recall_at_budget(y, score, budget=0.001) == pytest.approx(0.1)  # ceil -> 1 alert
    assert recall_at_budget(y, score, budget=0.0) == 0.0
    assert recall_at_budget(y, score, budget=1.0) == 1.0
    with pytest.raises(ValueError):
        recall_at_budget(y, score, budget=1.5)


def test_amount_recall_weights_by_amount() -> None:
    # top 1 of 4 alerted: the small fraud; the big fraud is missed
    y, score, amount = [1, 1, 0, 0], [0.9, 0.1, 0.5, 0.4], [10.0, 90.0, 5.0, 5.0]
    assert recall_at_budget(y, score, budget=0.25) == 0.5
    assert amount_recall_at_budget(y, score, amount, budget=0.25) == pytest.approx(0.1)


def test_card_precision_at_k_per_day() -> None:
    y = [0, 1, 0, 0, 0, 1, 0]
    score = [0.9, 0.1, 0.8, 0.7, 0.95, 0.2, 0.3]
    card = ["a", "a", "b", "c", "a", "b", "c"]
    day = [1, 1, 1, 1, 2, 2, 2]
    # day 1: card a = max 0.9 and compromised (its 0.1 row is fraud); top-2 {a, b} -> 1/2
    # day 2 without removal: a 0.95 clean, c 0.3 clean, b 0.2 fraud; top-2 {a, c} -> 0/2
    assert card_precision_at_k(y, score, card, day, k=2,
                               remove_detected=False) == pytest.approx(0.25)
    # the published protocol: a, detected on day 1, is out of day 2: top-2 {c, b} -> 1/2
    assert card_precision_at_k(y, score, card, day, k=2) == pytest.approx(0.5)
    # a card known compromised when day 2 begins is out too (b): day 2 reviews {c} -> 0
    known = [np.inf, np.inf, 2 * 86_400_000, np.inf, np.inf, 2 * 86_400_000, np.inf]
    days = pd.to_datetime(day, unit="D", utc=True)
    assert card_precision_at_k(y, score, card, days, k=2, known_ms=known) == pytest.approx(
        (0.5 + 0.0) / 2)
    # k above the day's card count divides by the cards there are: 1/3 and 1/3
    assert card_precision_at_k(y, score, card, day, k=10,
                               remove_detected=False) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        card_precision_at_k(y, score, card, day, k=0)


def test_card_precision_ties_break_by_card_id() -> None:
    assert card_precision_at_k([0, 1], [0.5, 0.5], ["z", "a"], [1, 1], k=1) == 1.0


def test_alerts_per_day() -> None:
    assert alerts_per_day([0.9, 0.1, 0.95], ["d1", "d2", "d2"], threshold=0.5) == 1.0
    assert math.isnan(alerts_per_day([], [], threshold=0.5))


def test_fraud_metrics_bundle() -> None:
    rng = np.random.default_rng(1)
    n = 1000
    y = (rng.random(n) < 0.05).astype(int)
    score = np.clip(0.3 * y + rng.random(n) * 0.8, 0.0, 1.0)
    out = fraud_metrics(
        y,
        score,
        rng.gamma(2.0, 30.0, n),
        rng.integers(0, 200, n),
        rng.integers(0, 10, n),
        budget=0.02,
        k=5,
    )
    assert set(out) == {
        "roc_auc",
        "average_precision",
        "average_precision_unknown_cards",
        "card_precision_at_k",
        "card_precision_at_k_all",
        "recall_at_budget",
        "amount_recall_at_budget",
        "alerts_per_day",
        "budget_threshold",
        "fraud_rate",
        "n",
        "n_fraud",
    }
    assert all(isinstance(v, float) for v in out.values())
    assert out["n"] == n and out["n_fraud"] == y.sum()
    assert out["alerts_per_day"] == pytest.approx(20 / 10)
    assert out["roc_auc"] > 0.6 and 0.0 <= out["average_precision"] <= 1.0


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="lengths"):
        roc_auc([0, 1], [0.1])
    with pytest.raises(ValueError, match="labels"):
        roc_auc([0, 2], [0.1, 0.2])


def test_matches_scikit_learn() -> None:
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for trial in range(50):
        n = int(rng.integers(5, 200))
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        score = rng.integers(0, 6, n) / 5 if trial % 2 else rng.random(n)  # odd: many ties
        assert roc_auc(y, score) == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)
        assert average_precision(y, score) == pytest.approx(
            skm.average_precision_score(y, score), abs=1e-12
        )


def test_ap_unknown_cards_leaves_out_the_rows_of_cards_known_before_their_day() -> None:
    """The published test set: a known compromised card's rows are not scored."""
    y = [1, 1, 0, 0]
    score = [0.9, 0.2, 0.5, 0.1]
    cards = ["known", "new", "c", "d"]
    days = pd.to_datetime(["2025-01-02"] * 4, utc=True)
    day_ms = float(days[0].value // 1_000_000)
    known = [day_ms - 1.0, np.inf, np.inf, np.inf]
    out = fraud_metrics(y, score, [1.0] * 4, cards, days, k=2, known_ms=known)
    assert out["average_precision"] == average_precision(y, score)
    assert out["average_precision_unknown_cards"] == average_precision([1, 0, 0], [0.2, 0.5, 0.1])
    plain = fraud_metrics(y, score, [1.0] * 4, cards, days, k=2)
    assert plain["average_precision_unknown_cards"] == plain["average_precision"]


def test_known_since_ms_counts_only_frauds_from_the_look_back_start() -> None:
    """A fraud before ``since`` (a card reissued long ago) does not make the card known."""
    events = pd.to_datetime(["2025-01-01", "2025-03-01", "2025-03-02"], utc=True)
    labels = events + pd.Timedelta(days=7)
    cards, fraud = ["old", "old", "recent"], [1, 0, 1]
    since = pd.Timestamp("2025-02-01", tz="UTC")
    bounded = known_since_ms(cards, fraud, labels, events, since)
    unbounded = known_since_ms(cards, fraud, labels)
    assert np.isinf(bounded[:2]).all() and np.isfinite(unbounded[:2]).all()
    assert bounded[2] == unbounded[2] == labels[2].value // 1_000_000
