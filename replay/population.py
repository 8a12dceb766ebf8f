"""The simulated world: customers (one card each), terminals, merchants and seasonality.

Geography is a 100 x 100 grid cut into vertical strips, one per home country (width by
population weight), so a customer's home country and the country of a nearby terminal agree
except near a border, which gives a little genuine cross-border spending. Foreign countries
have no terminals, only e-commerce merchants: genuine customers buy from them sometimes, so
"foreign country" is a strong but imperfect fraud signal, as in real data.

Every draw comes from the caller's :class:`numpy.random.Generator`, in a fixed order, so a
population is a pure function of ``(sizes, rng state)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

HOME_COUNTRIES = np.array(["FR", "DE", "ES", "IT", "NL", "BE", "PT", "GB"], dtype=object)
HOME_WEIGHTS = np.array([0.30, 0.20, 0.12, 0.12, 0.08, 0.06, 0.04, 0.08])
FOREIGN_COUNTRIES = np.array(["US", "CN", "NG", "BR", "RU", "TR", "VN", "AE"], dtype=object)
CURRENCY = {"GB": "GBP", "US": "USD", "CN": "CNY", "NG": "NGN", "BR": "BRL", "RU": "RUB",
            "TR": "TRY", "VN": "VND", "AE": "AED"}  # everything else: EUR

POS_MCCS = np.array(["5411", "5812", "5541", "5912", "5311", "5651", "5732", "5999", "4111"],
                    dtype=object)
POS_MCC_WEIGHTS = np.array([0.30, 0.20, 0.10, 0.08, 0.07, 0.08, 0.04, 0.08, 0.05])
ECOM_MCCS = np.array(["5999", "5732", "5815", "4722", "5691", "5944", "5942"], dtype=object)
ECOM_MCC_WEIGHTS = np.array([0.30, 0.15, 0.20, 0.10, 0.15, 0.03, 0.07])
ATM_MCC = "6011"
N_BANKS = 6

# Relative volume by hour of day (UTC); weekends start later and stay up later.
WEEKDAY_HOURS = np.array([0.15, 0.08, 0.05, 0.04, 0.05, 0.10, 0.30, 0.60, 0.90, 1.00, 1.05,
                          1.15, 1.30, 1.20, 1.05, 1.00, 1.05, 1.15, 1.25, 1.20, 1.00, 0.80,
                          0.55, 0.30])
WEEKEND_HOURS = np.array([0.30, 0.20, 0.10, 0.05, 0.04, 0.05, 0.10, 0.25, 0.50, 0.80, 1.00,
                          1.15, 1.25, 1.25, 1.15, 1.10, 1.10, 1.15, 1.20, 1.20, 1.05, 0.90,
                          0.70, 0.45])
# Relative volume by day of week, Monday = 0.
DAY_OF_WEEK = np.array([0.92, 0.95, 0.98, 1.00, 1.12, 1.18, 0.85])


def currency_of(countries: NDArray[np.object_]) -> NDArray[np.object_]:
    """ISO currency of each country code (EUR unless listed in :data:`CURRENCY`)."""
    codes, inverse = np.unique(countries.astype(str), return_inverse=True)
    return np.array([CURRENCY.get(c, "EUR") for c in codes], dtype=object)[inverse]


def country_at(x: NDArray[np.float64]) -> NDArray[np.object_]:
    """Home country of each grid x coordinate (vertical strips sized by weight)."""
    edges = np.cumsum(HOME_WEIGHTS) / HOME_WEIGHTS.sum() * 100.0
    return HOME_COUNTRIES[np.minimum(np.searchsorted(edges, x, side="right"),
                                     len(HOME_COUNTRIES) - 1)]


@dataclass(frozen=True)
class Population:
    """Arrays describing everyone; row ``i`` of a customer array is card ``card_ids[i]``."""

    card_ids: NDArray[np.object_]
    home_country: NDArray[np.object_]
    amount_mu: NDArray[np.float64]  # lognormal parameters of the customer's spend
    amount_sigma: NDArray[np.float64]
    tx_per_day: NDArray[np.float64]
    p_ecom: NDArray[np.float64]
    p_atm: NDArray[np.float64]
    n_devices: NDArray[np.int64]
    device_ids: NDArray[np.object_]  # (customers, 3); only the first n_devices are used
    near_pos: NDArray[np.int64]  # (customers, k) indices of the nearest POS terminals
    near_atm: NDArray[np.int64]  # (customers, k) indices of the nearest ATMs
    terminal_ids: NDArray[np.object_]
    terminal_merchant: NDArray[np.object_]
    terminal_mcc: NDArray[np.object_]
    terminal_country: NDArray[np.object_]
    terminal_is_atm: NDArray[np.bool_]
    ecom_ids: NDArray[np.object_]
    ecom_country: NDArray[np.object_]
    ecom_mcc: NDArray[np.object_]
    ecom_popularity: NDArray[np.float64]  # sums to 1

    @property
    def mean_amount(self) -> NDArray[np.float64]:
        return np.exp(self.amount_mu + self.amount_sigma**2 / 2.0)


def _nearest(points: NDArray[np.float64], pool: NDArray[np.float64], k: int,
             chunk: int = 2048) -> NDArray[np.int64]:
    """Indices of the ``k`` nearest pool points to every point (memory bounded by ``chunk``)."""
    k = min(k, len(pool))
    out = np.empty((len(points), k), dtype=np.int64)
    for lo in range(0, len(points), chunk):
        d = ((points[lo:lo + chunk, None, :] - pool[None, :, :]) ** 2).sum(axis=-1)
        out[lo:lo + chunk] = np.argpartition(d, k - 1, axis=1)[:, :k]
    return out


def build_population(rng: np.random.Generator, n_customers: int, n_terminals: int,
                     n_ecom_merchants: int) -> Population:
    """Draw customers, terminals (about 10% ATMs) and e-commerce merchants."""
    n = n_customers
    cust_xy = rng.uniform(0.0, 100.0, (n, 2))
    mean = rng.uniform(8.0, 120.0, n)
    cv = rng.uniform(0.3, 0.8, n)
    sigma = np.sqrt(np.log1p(cv**2))
    n_dev = rng.choice(np.array([1, 2, 3]), size=n, p=[0.55, 0.35, 0.10]).astype(np.int64)
    card_ids = np.array([f"C{i:06d}" for i in range(n)], dtype=object)
    devices = np.array([[f"D{i:06d}{j}" for j in range(3)] for i in range(n)], dtype=object)

    term_xy = rng.uniform(0.0, 100.0, (n_terminals, 2))
    is_atm = rng.random(n_terminals) < 0.1
    is_atm[0], is_atm[-1] = False, True  # both pools are never empty
    n_pos_merchants = max(1, (n_terminals * 2) // 3)
    merchant_of = rng.integers(0, n_pos_merchants, n_terminals)
    merchant_mcc = rng.choice(POS_MCCS, size=n_pos_merchants, p=POS_MCC_WEIGHTS)
    bank_of = rng.integers(0, N_BANKS, n_terminals)
    term_merchant = np.where(is_atm, np.array([f"B{b:02d}" for b in bank_of], dtype=object),
                             np.array([f"M{m:05d}" for m in merchant_of], dtype=object))
    term_mcc = np.where(is_atm, ATM_MCC, merchant_mcc[merchant_of])
    pos_idx, atm_idx = np.flatnonzero(~is_atm), np.flatnonzero(is_atm)

    # Every country (home and foreign) gets at least one e-commerce merchant.
    countries = np.concatenate([HOME_COUNTRIES, FOREIGN_COUNTRIES])
    weights = np.concatenate([HOME_WEIGHTS * 0.85, np.full(len(FOREIGN_COUNTRIES), 0.15 / 8)])
    n_ecom = max(n_ecom_merchants, len(countries))
    ecom_country = np.concatenate([countries, rng.choice(countries, size=n_ecom - len(countries),
                                                         p=weights / weights.sum())])
    popularity = rng.pareto(1.2, n_ecom) + 0.05  # a few big shops, a long tail
    return Population(
        card_ids=card_ids,
        home_country=country_at(cust_xy[:, 0]),
        amount_mu=np.log(mean) - sigma**2 / 2.0,
        amount_sigma=sigma,
        tx_per_day=rng.uniform(0.5, 4.5, n),
        p_ecom=rng.beta(2.0, 5.0, n),
        p_atm=rng.uniform(0.0, 0.12, n),
        n_devices=n_dev,
        device_ids=devices,
        near_pos=pos_idx[_nearest(cust_xy, term_xy[pos_idx], 8)],
        near_atm=atm_idx[_nearest(cust_xy, term_xy[atm_idx], 3)],
        terminal_ids=np.array([f"T{i:05d}" for i in range(n_terminals)], dtype=object),
        terminal_merchant=term_merchant,
        terminal_mcc=term_mcc,
        terminal_country=country_at(term_xy[:, 0]),
        terminal_is_atm=is_atm,
        ecom_ids=np.array([f"E{i:04d}" for i in range(n_ecom)], dtype=object),
        ecom_country=ecom_country,
        ecom_mcc=rng.choice(ECOM_MCCS, size=n_ecom, p=ECOM_MCC_WEIGHTS),
        ecom_popularity=popularity / popularity.sum(),
    )
