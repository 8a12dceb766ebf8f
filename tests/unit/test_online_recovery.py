"""The online model recovers recall on a fraud pattern the champion never saw.

Offline and deterministic (no Kafka): see ``bench/online_recovery.py`` for the command that
prints the per-day table. The champion is trained on the days before the new scenario
starts; the stream then runs with labels arriving at their label_time.
"""

from __future__ import annotations

from bench.online_recovery import experiment


def test_combination_recovers_recall_on_an_unseen_pattern() -> None:
    out = experiment(customers=1000, days=36, start_day=24, scenario="card_testing",
                     share=0.003, seed=3)
    champion, combined = out["totals"]["champion"], out["totals"]["combined"]
    print(out["totals"])
    assert out["config"]["new_frauds"] > 100
    # the new pattern: at a 1% daily alert budget the combination catches far more of it
    assert combined["recall_new_after"] >= champion["recall_new_after"] + 0.1
    # and precision before the new pattern is not worse (weight 0 until warm-up, then >=)
    assert combined["precision_before"] >= champion["precision_before"] - 0.02
