"""The labelled fraud scenarios injected into a genuine history.

- ``card_testing``: a stolen card number is probed with 3-10 tiny payments (mostly ecom,
  some moto) at merchants drawn uniformly, so new to the card, minutes apart; then 2-5 large
  ecom purchases follow within the hour or two.
- ``compromised_terminal``: a POS terminal is compromised for 3-21 days; a fraction of the
  genuine transactions through it become fraudulent (skimming or collusion), and with some
  probability each skimmed card is misused elsewhere 1-10 days later (ATM cash-outs, large
  purchases at unrelated terminals).
- ``account_takeover``: an attacker logs in from a new device in a foreign country and makes
  1-5 high-value ecom purchases there.

Fraudster devices come from a small shared pool (rings reuse devices across victims).
Incidents start uniformly within ``[start_day, days - 1)`` at any hour, so fraud ignores the
daily rhythm of genuine spending. Each injector draws incidents until its scenario holds
``target`` rows (at least one incident), and returns the rows plus the next incident id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from replay.config import ScenarioSpec, SimulationConfig
from replay.population import FOREIGN_COUNTRIES, Population, currency_of
from replay.rows import NULL, Batch, make_rows

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
MAX_ATTEMPTS = 10_000


@dataclass(frozen=True)
class Context:
    rng: np.random.Generator
    pop: Population
    config: SimulationConfig
    start_ms: int
    end_ms: int
    fraud_devices: NDArray[np.object_]

    def incident_start(self, spec: ScenarioSpec) -> int:
        lo = self.start_ms + spec.start_day * DAY_MS
        hi = max(self.end_ms - DAY_MS, lo + (self.end_ms - lo) // 2)
        return int(self.rng.integers(lo, hi))

    def fraud_device(self) -> str:
        return str(self.rng.choice(self.fraud_devices))


def ecom_rows(ctx: Context, times: NDArray[np.float64], cust: int, merchants: NDArray[np.int64],
              amounts: NDArray[np.float64], channel: NDArray[np.object_] | str,
              device: NDArray[np.object_] | str | None, scenario: str, incident: int) -> Batch:
    """Card-not-present fraud rows at e-commerce merchants (country = merchant's)."""
    pop = ctx.pop
    country = pop.ecom_country[merchants]
    return make_rows(len(times), event_ms=times.astype(np.int64), cust=cust,
                     merchant_id=pop.ecom_ids[merchants], amount=np.round(amounts, 2),
                     currency=currency_of(country), channel=channel, country=country,
                     mcc=pop.ecom_mcc[merchants], device_id=device, scenario=scenario,
                     incident=incident, is_fraud=True)


def terminal_rows(ctx: Context, times: NDArray[np.float64], cust: int,
                  terms: NDArray[np.int64], amounts: NDArray[np.float64], scenario: str,
                  incident: int) -> Batch:
    """Card-present fraud rows at POS terminals or ATMs."""
    pop = ctx.pop
    country = pop.terminal_country[terms]
    channel = np.where(pop.terminal_is_atm[terms], "atm", "pos").astype(object)
    return make_rows(len(times), event_ms=times.astype(np.int64), cust=cust, term=terms,
                     merchant_id=pop.terminal_merchant[terms], terminal_id=pop.terminal_ids[terms],
                     amount=np.round(amounts, 2), currency=currency_of(country), channel=channel,
                     country=country, mcc=pop.terminal_mcc[terms], scenario=scenario,
                     incident=incident, is_fraud=True)


def card_testing(ctx: Context, target: float, incident: int) -> tuple[list[Batch], int]:
    rng, pop, spec = ctx.rng, ctx.pop, ctx.config.card_testing
    batches: list[Batch] = []
    rows = 0
    while rows < target or not batches:
        cust = int(rng.integers(len(pop.card_ids)))
        n_test, n_big = int(rng.integers(3, 11)), int(rng.integers(2, 6))
        t_test = ctx.incident_start(spec) + rng.exponential(2 * MINUTE_MS, n_test).cumsum()
        t_big = t_test[-1] + 10 * MINUTE_MS + rng.exponential(20 * MINUTE_MS, n_big).cumsum()
        small = rng.uniform(0.5, 4.99, n_test)
        big = np.maximum(150.0, rng.lognormal(np.log(600.0), 0.5, n_big))
        probe_ecom = np.concatenate([rng.random(n_test) < 0.85, np.ones(n_big, dtype=bool)])
        channel = np.where(probe_ecom, "ecom", "moto").astype(object)
        device = np.where(probe_ecom, ctx.fraud_device(), NULL).astype(object)
        merchants = rng.integers(0, len(pop.ecom_ids), n_test + n_big)
        batches.append(ecom_rows(ctx, np.concatenate([t_test, t_big]), cust, merchants,
                                 np.concatenate([small, big]), channel, device,
                                 "card_testing", incident))
        rows += n_test + n_big
        incident += 1
    return batches, incident


def compromised_terminal(ctx: Context, genuine: Batch, target: float,
                         incident: int) -> tuple[list[Batch], int]:
    """Relabels rows of ``genuine`` in place and returns the misuse-elsewhere rows."""
    rng, pop, config = ctx.rng, ctx.pop, ctx.config
    pos, atm = np.flatnonzero(~pop.terminal_is_atm), np.flatnonzero(pop.terminal_is_atm)
    batches: list[Batch] = []
    rows = attempts = 0
    first = incident
    while (rows < target or incident == first) and attempts < MAX_ATTEMPTS:
        attempts += 1
        term = int(rng.choice(pos))
        t0 = ctx.incident_start(config.compromised_terminal)
        t1 = t0 + rng.uniform(3.0, 21.0) * DAY_MS
        ev = genuine["event_ms"]
        hit = np.flatnonzero((genuine["term"] == term) & (ev >= t0) & (ev < t1)
                             & ~genuine["is_fraud"])
        hit = hit[rng.random(len(hit)) < config.terminal_fraud_fraction]
        if not len(hit):
            continue
        genuine["is_fraud"][hit] = True
        genuine["scenario"][hit] = "compromised_terminal"
        genuine["incident"][hit] = incident
        rows += len(hit)
        hit = hit[np.argsort(ev[hit], kind="stable")]
        cards, firsts = np.unique(genuine["cust"][hit], return_index=True)
        misused = rng.random(len(cards)) < config.terminal_misuse_prob
        for cust, t_skim in zip(cards[misused], ev[hit][firsts][misused], strict=True):
            n = int(rng.integers(1, 5))
            times = t_skim + rng.uniform(1.0, 10.0) * DAY_MS + rng.exponential(
                3 * HOUR_MS, n).cumsum()
            at_atm = rng.random(n) < 0.5
            terms = np.where(at_atm, rng.choice(atm, n), rng.choice(pos, n))
            amounts = np.where(at_atm, np.round(rng.uniform(100.0, 500.0, n) / 20.0) * 20.0,
                               rng.lognormal(np.log(250.0), 0.6, n))
            batches.append(terminal_rows(ctx, times, int(cust), terms, amounts,
                                         "compromised_terminal", incident))
            rows += n
        incident += 1
    return batches, incident


def account_takeover(ctx: Context, target: float, incident: int) -> tuple[list[Batch], int]:
    rng, pop, spec = ctx.rng, ctx.pop, ctx.config.account_takeover
    foreign = [np.flatnonzero(pop.ecom_country == c) for c in FOREIGN_COUNTRIES]
    foreign = [m for m in foreign if len(m)]
    batches: list[Batch] = []
    rows = 0
    while rows < target or not batches:
        cust = int(rng.integers(len(pop.card_ids)))
        n = int(rng.integers(1, 6))
        times = ctx.incident_start(spec) + np.concatenate(
            [[0.0], rng.exponential(40 * MINUTE_MS, n - 1).cumsum()])
        shops = foreign[int(rng.integers(len(foreign)))]
        merchants = rng.choice(shops, n)
        amounts = np.maximum(rng.uniform(150.0, 400.0, n),
                             pop.mean_amount[cust] * rng.uniform(4.0, 12.0, n))
        batches.append(ecom_rows(ctx, times, cust, merchants, amounts, "ecom",
                                 ctx.fraud_device(), "account_takeover", incident))
        rows += n
        incident += 1
    return batches, incident
