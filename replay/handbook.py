"""A replica of the transaction generator of the card-fraud detection handbook's benchmark.

"Reproducible Machine Learning for Credit Card Fraud Detection — Practical Handbook"
(Le Borgne et al.), chapter "Transaction data simulator", publishes both its dataset and
the algorithm that made it. This module follows the **algorithm** (not its random draws:
our own seeded generator, so the published data is not reproduced) so that the project can
measure itself on a world shaped like that benchmark:

* customers at (x, y) uniform on a 100 x 100 grid, mean amount U(5, 100), standard
  deviation = mean / 2, mean transactions per day U(0, 4);
* terminals at (x, y) uniform on the same grid; a customer's terminals are those strictly
  within ``radius`` (5) of it;
* each day, Poisson(mean per day) transactions per customer, at second
  ``int(Normal(43200, 20000))``, dropped unless within (0, 86400) (as the handbook does);
  amount Normal(mean, std), a negative one redrawn U(0, 2 x mean), rounded to 2 decimals;
  the terminal uniform among the customer's terminals;
* fraud, in this order: (1) every amount > 220; (2) each day ``d`` but the last, 2 distinct
  random terminals are compromised and every transaction through them on days
  ``[d, d + 28)`` is fraud; (3) each day ``d`` but the last, 3 distinct random customers are
  compromised and ``int(n / 3)`` of their ``n`` transactions on days ``[d, d + 14)``,
  drawn without replacement, are fraud with their amount multiplied by 5 (a row drawn on
  several days is multiplied each time, as in the handbook).

:func:`transactions` returns the handbook's own columns (``TRANSACTION_ID``,
``TX_DATETIME``, ``CUSTOMER_ID``, ``TERMINAL_ID``, ``TX_AMOUNT``, ``TX_TIME_SECONDS``,
``TX_TIME_DAYS``, ``TX_FRAUD``, ``TX_FRAUD_SCENARIO``), sorted by time;
:data:`MAPPING` is the column mapping a user gives ``fraudstream replay`` for such a file
(labels known ``label_delay_days`` = 7 days after each transaction) and :func:`history`
applies it exactly as ``replay backtest`` does. The full size (5,000 customers, 10,000
terminals, 183 days from 2018-04-01: about 1.75 M transactions, 0.8 % fraud) is
:meth:`HandbookConfig.full`; ``python -m replay.handbook --out FILE`` writes it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from replay.mapping import ColumnMapping
from replay.validation import normalize

DAY_S = 86_400
COLUMNS = ("TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT",
           "TX_TIME_SECONDS", "TX_TIME_DAYS", "TX_FRAUD", "TX_FRAUD_SCENARIO")
MAPPING = ColumnMapping(columns={
    "TRANSACTION_ID": "transaction_id", "TX_DATETIME": "event_time", "CUSTOMER_ID": "card_id",
    "TERMINAL_ID": "terminal_id", "TX_AMOUNT": "amount", "TX_FRAUD": "is_fraud"},
    label_delay_days=7.0)
# the benchmark's standard test week (its protocol: train 2018-07-25 .. 07-31, 7-day delay)
TEST_START = pd.Timestamp("2018-08-08", tz="UTC")
TEST_END = pd.Timestamp("2018-08-15", tz="UTC")


@dataclass(frozen=True)
class HandbookConfig:
    """Sizes and doses of the generator (defaults: the handbook's, on a smaller world)."""

    n_customers: int = 1000
    n_terminals: int = 2000
    days: int = 183
    start: date = date(2018, 4, 1)
    seed: int = 0
    radius: float = 5.0
    high_amount: float = 220.0
    terminals_per_day: int = 2
    terminal_days: int = 28
    customers_per_day: int = 3
    customer_days: int = 14
    customer_multiplier: float = 5.0

    @classmethod
    def full(cls, seed: int = 0) -> HandbookConfig:
        """The published benchmark's size: 5,000 customers, 10,000 terminals, 183 days."""
        return cls(n_customers=5000, n_terminals=10_000, seed=seed)


def _within(cust_xy: np.ndarray, term_xy: np.ndarray, radius: float) -> list[np.ndarray]:
    """Per customer, the indices of the terminals strictly within ``radius``."""
    out: list[np.ndarray] = []
    for lo in range(0, len(cust_xy), 500):
        block = cust_xy[lo:lo + 500]
        dist = np.sqrt(((block[:, None, :] - term_xy[None, :, :]) ** 2).sum(axis=2))
        out += [np.flatnonzero(row < radius) for row in dist]
    return out


class World(NamedTuple):
    """The generated profiles and transactions (profiles: the handbook's columns)."""

    customers: pd.DataFrame  # CUSTOMER_ID, x/y_customer_id, mean/std_amount, mean_nb_tx_per_day
    terminals: pd.DataFrame  # TERMINAL_ID, x/y_terminal_id
    transactions: pd.DataFrame  # COLUMNS


def _profiles(rng: np.random.Generator, config: HandbookConfig
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = config.n_customers
    xy = rng.uniform(0, 100, (n, 2))
    mean = rng.uniform(5, 100, n)
    customers = pd.DataFrame({
        "CUSTOMER_ID": np.arange(n), "x_customer_id": xy[:, 0], "y_customer_id": xy[:, 1],
        "mean_amount": mean, "std_amount": mean / 2,
        "mean_nb_tx_per_day": rng.uniform(0, 4, n)})
    xy = rng.uniform(0, 100, (config.n_terminals, 2))
    terminals = pd.DataFrame({"TERMINAL_ID": np.arange(config.n_terminals),
                              "x_terminal_id": xy[:, 0], "y_terminal_id": xy[:, 1]})
    return customers, terminals


def _genuine(rng: np.random.Generator, config: HandbookConfig, customers: pd.DataFrame,
             terminals: pd.DataFrame) -> pd.DataFrame:
    n = config.n_customers
    cust_xy = customers[["x_customer_id", "y_customer_id"]].to_numpy()
    mean = customers["mean_amount"].to_numpy()
    std = customers["std_amount"].to_numpy()
    per_day = customers["mean_nb_tx_per_day"].to_numpy()
    term_xy = terminals[["x_terminal_id", "y_terminal_id"]].to_numpy()
    near = _within(cust_xy, term_xy, config.radius)
    counts = rng.poisson(np.repeat(per_day, config.days)).reshape(n, config.days)
    has = np.array([len(t) > 0 for t in near])
    counts[~has] = 0
    cust, day = np.divmod(np.repeat(np.arange(n * config.days), counts.ravel()), config.days)
    second = rng.normal(DAY_S / 2, 20_000, len(cust)).astype(np.int64)  # int() truncates
    keep = (second > 0) & (second < DAY_S)
    cust, day, second = cust[keep], day[keep], second[keep]
    amount = rng.normal(mean[cust], std[cust])
    negative = amount < 0
    amount[negative] = rng.uniform(0, 2 * mean[cust[negative]])
    n_near = np.array([len(t) for t in near])
    offsets = np.concatenate([[0], np.cumsum(n_near)[:-1]])
    flat = np.concatenate(near) if near else np.empty(0, np.int64)
    pick = (rng.random(len(cust)) * n_near[cust]).astype(np.int64)
    frame = pd.DataFrame({
        "TX_TIME_SECONDS": day * DAY_S + second, "TX_TIME_DAYS": day, "CUSTOMER_ID": cust,
        "TERMINAL_ID": flat[offsets[cust] + pick], "TX_AMOUNT": np.round(amount, 2)})
    return frame.sort_values("TX_TIME_SECONDS", kind="stable", ignore_index=True)


def _add_frauds(rng: np.random.Generator, config: HandbookConfig, tx: pd.DataFrame) -> None:
    amount = tx["TX_AMOUNT"].to_numpy().copy()
    fraud = np.zeros(len(tx), dtype=np.int8)
    scenario = np.zeros(len(tx), dtype=np.int8)
    high = amount > config.high_amount
    fraud[high], scenario[high] = 1, 1
    days = tx["TX_TIME_DAYS"].to_numpy()
    last = int(days.max()) if len(days) else 0
    for column, k, span, kind in (("TERMINAL_ID", config.terminals_per_day,
                                   config.terminal_days, 2),
                                  ("CUSTOMER_ID", config.customers_per_day,
                                   config.customer_days, 3)):
        ids = tx[column].to_numpy()
        population = config.n_terminals if kind == 2 else config.n_customers
        order = np.argsort(ids, kind="stable")
        for day in range(last):
            chosen = np.sort(rng.choice(population, k, replace=False))
            lo = np.searchsorted(ids, chosen, sorter=order, side="left")
            hi = np.searchsorted(ids, chosen, sorter=order, side="right")
            rows = np.concatenate([order[a:b] for a, b in zip(lo, hi, strict=True)])
            rows = np.sort(rows[(days[rows] >= day) & (days[rows] < day + span)])
            if kind == 3:
                rows = rng.choice(rows, len(rows) // 3, replace=False)
                amount[rows] = amount[rows] * config.customer_multiplier
            fraud[rows], scenario[rows] = 1, kind
    tx["TX_AMOUNT"], tx["TX_FRAUD"], tx["TX_FRAUD_SCENARIO"] = amount, fraud, scenario


def generate(config: HandbookConfig) -> World:
    """Profiles and transactions of one run (deterministic for a config)."""
    rng = np.random.default_rng(np.random.SeedSequence(config.seed))
    customers, terminals = _profiles(rng, config)
    tx = _genuine(rng, config, customers, terminals)
    _add_frauds(rng, config, tx)
    start = pd.Timestamp(config.start)
    tx["TX_DATETIME"] = start + pd.to_timedelta(tx["TX_TIME_SECONDS"], unit="s")
    tx["TRANSACTION_ID"] = np.arange(len(tx))
    return World(customers, terminals, tx[list(COLUMNS)])


def transactions(config: HandbookConfig) -> pd.DataFrame:
    """The generated table in the handbook's columns (:data:`COLUMNS`), in time order."""
    return generate(config).transactions


def history(config: HandbookConfig, mapping: ColumnMapping = MAPPING) -> pd.DataFrame:
    """The table as ``fraudstream replay`` reads it with :data:`MAPPING` (scenario kept)."""
    tx = transactions(config)
    out = normalize(tx, mapping, source="handbook replica")
    out["scenario"] = tx["TX_FRAUD_SCENARIO"].map(
        {0: "none", 1: "high_amount", 2: "compromised_terminal", 3: "compromised_card"}
    ).to_numpy(dtype=object)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the handbook-replica transactions "
                                     "(the handbook's columns) as Parquet or CSV.")
    parser.add_argument("--out", required=True, help="file: .parquet or .csv")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=183)
    args = parser.parse_args(argv)
    config = HandbookConfig(n_customers=args.customers, n_terminals=args.terminals,
                            days=args.days, seed=args.seed)
    tx = transactions(config)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        tx.to_parquet(out, index=False)
    else:
        tx.to_csv(out, index=False)
    print(f"wrote {out}: {len(tx):,} transactions, {int(tx['TX_FRAUD'].sum()):,} fraud "
          f"({tx['TX_FRAUD'].mean():.2%}); scenarios "
          f"{tx['TX_FRAUD_SCENARIO'].value_counts().sort_index().to_dict()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
