"""Deterministic simulator of card transactions with labelled fraud scenarios.

``simulate(config)`` is a pure function of its :class:`SimulationConfig`: no wall clock,
no global random state. Each stage (population, genuine spending, each scenario, labels)
draws from its own child of ``SeedSequence(config.seed)``, so changing one scenario's dose or
start day leaves the genuine rows and the other scenarios' incidents unchanged (apart from
the genuine rows a compromised terminal relabels).

Genuine spending: each customer makes Poisson(``tx_per_day`` x day-of-week factor)
transactions a day, at hours drawn from a weekday or weekend profile (quiet nights); a
transaction is ecom (a popular, usually domestic, shop, from one of the customer's 1-3
devices), ATM (one of the 3 nearest ATMs, round amounts) or POS (one of the 8 nearest
terminals), with a lognormal amount around the customer's own mean. Amounts are in one
notional unit whatever the currency. See :mod:`replay.scenarios` for fraud and
:mod:`replay.labels` for label timing; the output format is described in
:mod:`replay.history`.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

import numpy as np
import pandas as pd

from replay.classic import classic as _classic
from replay.config import SCENARIOS, ScenarioSpec, SimulationConfig
from replay.history import (
    EXTRA_COLUMNS,
    HISTORY_COLUMNS,
    iter_transactions,
    label_records,
    read_history,
    to_transaction_records,
    write_history,
)
from replay.labels import assign_labels
from replay.population import DAY_OF_WEEK, WEEKDAY_HOURS, WEEKEND_HOURS, Population, currency_of
from replay.population import build_population as _build_population
from replay.rows import NULL, Batch, concat, make_rows, size, take
from replay.scenarios import DAY_MS, HOUR_MS, Context
from replay.scenarios import account_takeover as _account_takeover
from replay.scenarios import card_testing as _card_testing
from replay.scenarios import compromised_terminal as _compromised_terminal

__all__ = [
    "ScenarioSpec", "SimulationConfig", "simulate", "write_history", "read_history",
    "iter_transactions", "to_transaction_records", "label_records",
]
DOMESTIC_ECOM = 0.8  # share of ecom purchases at shops of the customer's own country
_STAGES = ("population", "genuine", *SCENARIOS, "labels", "classic")  # append new stages


def _genuine(rng: np.random.Generator, pop: Population, config: SimulationConfig,
             start_ms: int) -> Batch:
    n, days = config.n_customers, config.days
    dow = (config.start.weekday() + np.arange(days)) % 7
    counts = rng.poisson(pop.tx_per_day[:, None] * DAY_OF_WEEK[dow][None, :])
    cust, day = np.divmod(np.repeat(np.arange(n * days), counts.ravel()), days)
    total = len(cust)
    hour = np.where(dow[day] >= 5,
                    rng.choice(24, total, p=WEEKEND_HOURS / WEEKEND_HOURS.sum()),
                    rng.choice(24, total, p=WEEKDAY_HOURS / WEEKDAY_HOURS.sum()))
    event_ms = start_ms + day * DAY_MS + hour * HOUR_MS + rng.integers(0, HOUR_MS, total)

    u = rng.random(total)
    ecom = u < pop.p_ecom[cust]
    atm = ~ecom & (u < pop.p_ecom[cust] + pop.p_atm[cust])
    pos_term = pop.near_pos[cust, rng.integers(0, pop.near_pos.shape[1], total)]
    atm_term = pop.near_atm[cust, rng.integers(0, pop.near_atm.shape[1], total)]
    term = np.where(ecom, -1, np.where(atm, atm_term, pos_term))

    shop = rng.choice(len(pop.ecom_ids), total, p=pop.ecom_popularity)
    domestic = rng.random(total) < DOMESTIC_ECOM
    home = pop.home_country[cust]
    for country in np.unique(pop.home_country):
        rows = np.flatnonzero(domestic & (home == country))
        local = np.flatnonzero(pop.ecom_country == country)
        weights = pop.ecom_popularity[local]
        shop[rows] = rng.choice(local, len(rows), p=weights / weights.sum())

    amount = rng.lognormal(pop.amount_mu[cust], pop.amount_sigma[cust])
    amount = np.where(atm, np.maximum(20.0, np.round(amount * 2.0 / 20.0) * 20.0),
                      np.maximum(0.5, np.round(amount, 2)))
    slot = (rng.random(total) * pop.n_devices[cust]).astype(np.int64)
    t = np.maximum(term, 0)
    country = np.where(ecom, pop.ecom_country[shop], pop.terminal_country[t])
    return make_rows(
        total, event_ms=event_ms, cust=cust, term=term, amount=amount, country=country,
        merchant_id=np.where(ecom, pop.ecom_ids[shop], pop.terminal_merchant[t]),
        terminal_id=np.where(ecom, NULL, pop.terminal_ids[t]),
        currency=currency_of(country),
        channel=np.where(ecom, "ecom", np.where(atm, "atm", "pos")).astype(object),
        mcc=np.where(ecom, pop.ecom_mcc[shop], pop.terminal_mcc[t]),
        device_id=np.where(ecom, pop.device_ids[cust, slot], NULL),
    )


def _frame(rows: Batch, pop: Population, config: SimulationConfig,
           label_ms: np.ndarray, label_source: np.ndarray) -> pd.DataFrame:
    n = size(rows)
    ids = pd.Series(np.arange(n)).astype(str).str.zfill(9)
    data = {
        "transaction_id": (config.transaction_prefix + ids).to_numpy(dtype=object),
        "event_time": pd.to_datetime(rows["event_ms"], unit="ms", utc=True),
        "card_id": pop.card_ids[rows["cust"]],
        **{c: rows[c] for c in ("merchant_id", "terminal_id", "amount", "currency",
                                "channel", "country", "mcc", "device_id")},
        "schema_version": np.ones(n, dtype=np.int16),
        "is_fraud": rows["is_fraud"],
        "scenario": rows["scenario"],
        "label_time": pd.to_datetime(label_ms, unit="ms", utc=True),
        "label_source": label_source,
        "fraud_incident": rows["incident"],
    }
    return pd.DataFrame(data, columns=[*HISTORY_COLUMNS, *EXTRA_COLUMNS])


def simulate(config: SimulationConfig) -> pd.DataFrame:
    """A labelled history: columns of :mod:`replay.history`, sorted by event time.

    Fraud rows falling after the last simulated day are dropped; transaction ids are
    ``f"{config.transaction_prefix}{i:09d}"`` in event-time order.
    """
    seeds = np.random.SeedSequence(config.seed).spawn(len(_STAGES))
    rng = {stage: np.random.Generator(np.random.PCG64(s)) for stage, s in
           zip(_STAGES, seeds, strict=True)}
    start_ms = int(datetime.combine(config.start, time(), tzinfo=UTC).timestamp() * 1000)
    end_ms = start_ms + config.days * DAY_MS
    pop = _build_population(rng["population"], config.n_customers, config.n_terminals,
                            config.n_ecom_merchants)
    genuine = _genuine(rng["genuine"], pop, config, start_ms)
    n_genuine = size(genuine)
    fraud_devices = np.array([f"X{i:05d}" for i in range(64)], dtype=object)
    batches, incident = [genuine], 0
    if config.classic is not None:
        incident = _classic(rng["classic"], config.classic, genuine, pop, start_ms,
                            config.days, incident)
    for name in SCENARIOS:
        target = config.scenario(name).share * n_genuine
        if target <= 0:
            continue
        ctx = Context(rng[name], pop, config, start_ms, end_ms, fraud_devices)
        if name == "card_testing":
            new, incident = _card_testing(ctx, target, incident)
        elif name == "compromised_terminal":
            new, incident = _compromised_terminal(ctx, genuine, target, incident)
        else:
            new, incident = _account_takeover(ctx, target, incident)
        batches += new
    rows = concat(batches)
    rows = take(rows, (rows["event_ms"] >= start_ms) & (rows["event_ms"] < end_ms))
    rows = take(rows, np.lexsort((rows["cust"], rows["event_ms"])))
    label_ms, label_source = assign_labels(rng["labels"], config, rows["event_ms"],
                                           rows["is_fraud"], rows["cust"], rows["incident"])
    return _frame(rows, pop, config, label_ms, label_source)
