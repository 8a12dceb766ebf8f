"""The score the scorer publishes is binned exactly like the model's reference profile.

A small boosted model gives many transactions the very same score, so the profile's
quantile edges sit on those tied values. Rounding the published score (it used to be
rounded to 6 decimals) moved tied values to the other side of their edge: the monitor then
reported score drift (PSI 0.26, KS D 0.34 in the demo) on the champion's own traffic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xgboost as xgb

from drift.detect import evaluate_window
from drift.records import observation
from drift.reference import SCORE, Reference
from models.profile import reference_profile
from scoring.records import score_record
from streams.serde import dumps


def test_published_scores_show_no_drift_against_their_own_profile() -> None:
    rng = np.random.default_rng(5)
    n = 4000
    x = np.column_stack([rng.integers(0, 4, n), rng.integers(0, 3, n)]).astype(float)
    y = ((x[:, 0] == 3) & (rng.random(n) < 0.6)).astype(float)
    booster = xgb.train({"max_depth": 2, "eta": 0.3, "seed": 0, "nthread": 1},
                        xgb.DMatrix(x, label=y), num_boost_round=5)
    scores = booster.inplace_predict(x)
    assert np.unique(scores).size < 20  # heavy ties, as in a real champion's scores
    names = ["a", "b"]
    frame = pd.DataFrame(x, columns=names)
    reference = Reference.from_profile(reference_profile(frame, names, scores), "1")

    published = []
    for i in range(n):
        record = {"transaction_id": f"t{i}", "event_time": "2025-01-06T00:00:00Z",
                  "card_id": "c"}
        out = score_record(record, score=float(scores[i]), decision="approve",
                           versions={"batch": "1", "online": None}, feature_names=names,
                           vector=tuple(x[i]), latency_ms=1)
        published.append(observation(dumps(out)).values[SCORE])
    report = evaluate_window({SCORE: np.asarray(published), **{k: frame[k] for k in names}},
                             reference, start_ms=0, end_ms=1)
    exact = report.column(SCORE)
    assert exact.severity == "none" and exact.psi < 0.01 and exact.ks_statistic < 0.05
    rounded = evaluate_window({SCORE: np.round(np.asarray(published), 6)}, reference,
                              start_ms=0, end_ms=1).column(SCORE)
    assert rounded.severity != "none"  # what rounding did (here KS D 0.75)
