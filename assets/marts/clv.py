"""Customer lifetime value: the BG/NBD and Gamma-Gamma models, fitted by maximum likelihood.

BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): while alive, a
customer buys at a Poisson rate lambda ~ Gamma(r, alpha); after every purchase they drop
out for good with probability p ~ Beta(a, b). From each customer's repeat purchases
(frequency x), the time of the last one (recency t_x, from the first purchase) and the
time observed (T, first purchase to the end of observation), it gives the probability
the customer is still alive and the expected purchases in a coming period.

Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV"): the value of a customer's
transactions varies around their own mean, which varies across customers; it is fitted
on customers with repeat purchases, from their number (x) and mean value (m). It assumes
spend is independent of purchase frequency.

Units: any time unit, the same for recency, T and the horizon (the pipeline uses weeks).
The pipeline counts purchases per day (several on one day are one transaction), and the
mean value m excludes the first purchase, as the Gamma-Gamma model expects. Predicted
values are not discounted.

Plain numpy functions, vectorized over customers, with scipy for the special functions
and the optimizer; parameters are optimized on the log scale so they stay positive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

MIN_REPEAT_CUSTOMERS = 10

# When a BG/NBD fit is degenerate (bgnbd_degeneracy): the mean drop-out probability per
# purchase pinned this close to 0 or 1, or probability_alive spread over less than
# FLAT_ALIVE_SPREAD across repeat buyers whose weeks since their last purchase differ by
# at least DIFFERENT_RECENCY_WEEKS.
DROPOUT_MEAN_EDGE = 1e-6
FLAT_ALIVE_SPREAD = 0.01
DIFFERENT_RECENCY_WEEKS = 13.0


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    v: float


def _arrays(*values) -> list[np.ndarray]:
    return [np.asarray(v, dtype=float) for v in values]


def bgnbd_log_likelihood(params: BgNbd, frequency, recency, T) -> float:
    """Total log-likelihood of the customers' (x, t_x, T) under `params` (the paper's equation 6)."""
    x, t_x, T = _arrays(frequency, recency, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    common = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    still_alive = special.betaln(a, b + x) - special.betaln(a, b) - (r + x) * np.log(alpha + T)
    # Dropped out right after the last purchase: only possible with a repeat purchase.
    with np.errstate(divide="ignore", invalid="ignore"):
        dropped = np.where(
            x > 0,
            special.betaln(a + 1, np.maximum(b + x - 1, 1e-12))
            - special.betaln(a, b)
            - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return float(np.sum(common + np.logaddexp(still_alive, dropped)))


def _fit(negative_log_likelihood, start: list[float]) -> np.ndarray:
    result = optimize.minimize(
        negative_log_likelihood,
        np.log(start),
        method="Nelder-Mead",
        options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-9},
    )
    if not result.success or not np.all(np.isfinite(result.x)):
        raise ValueError(f"the model did not converge: {result.message}")
    return np.exp(result.x)


def fit_bgnbd(frequency, recency, T) -> BgNbd:
    x, t_x, T = _arrays(frequency, recency, T)
    if len(x) == 0 or np.any(t_x > T) or np.any(x < 0):
        raise ValueError("BG/NBD needs customers with frequency >= 0 and recency <= T")
    scale = len(x)

    def negative(log_params: np.ndarray) -> float:
        value = bgnbd_log_likelihood(BgNbd(*np.exp(log_params)), x, t_x, T)
        return -value / scale if np.isfinite(value) else np.inf

    return BgNbd(*_fit(negative, [1.0, max(float(np.mean(T)), 1.0), 1.0, 1.0]))


def probability_alive(params: BgNbd, frequency, recency, T) -> np.ndarray:
    x, t_x, T = _arrays(frequency, recency, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        odds_dropped = np.where(
            x > 0,
            (a / np.maximum(b + x - 1, 1e-12))
            * np.exp((r + x) * np.log((alpha + T) / (alpha + t_x))),
            0.0,
        )
    return 1.0 / (1.0 + odds_dropped)


def bgnbd_degeneracy(params: BgNbd, frequency, recency, T) -> str | None:
    """Why a converged BG/NBD fit is no use for telling active customers from lapsed ones,
    or None when it is.

    Maximum likelihood can run off to the edge of the parameter space when the data hold
    no evidence of drop-out (or of survival): b grows without bound while a shrinks, and
    the optimizer stops somewhere along that ridge (a = 0.0005, b = 3e11 on the demo data).
    The model there is the NBD without drop-out: probability_alive is 1 for everyone, so
    a buyer silent for a year is "alive" and still predicted to buy. Two criteria, each
    sufficient:

    - the drop-out process is pinned: E[p] = a / (a + b), the mean probability of dropping
      out after a purchase, is within DROPOUT_MEAN_EDGE of 0 (nobody ever leaves) or of 1
      (everybody leaves at once). The bound is on the ratio, not on a or b alone: large a
      and b with a moderate ratio only say everyone has the same p, a fine model.
    - the fit cannot tell recencies apart: across the repeat buyers (only they can have
      dropped out), probability_alive spreads over less than FLAT_ALIVE_SPREAD although
      their weeks since the last purchase differ by DIFFERENT_RECENCY_WEEKS or more. This
      checks the symptom itself, whatever parameters cause it.
    """
    x, t_x, T = _arrays(frequency, recency, T)
    dropout_mean = params.a / (params.a + params.b)
    if dropout_mean < DROPOUT_MEAN_EDGE or dropout_mean > 1 - DROPOUT_MEAN_EDGE:
        return (
            f"degenerate BG/NBD fit: mean drop-out probability a / (a + b) = {dropout_mean:.3g} "
            f"(a = {params.a:.3g}, b = {params.b:.3g}) is at the edge of its range, "
            "so probability_alive does not depend on recency"
        )
    repeat = x > 0
    if repeat.any():
        silent_weeks = T[repeat] - t_x[repeat]
        alive = probability_alive(params, x[repeat], t_x[repeat], T[repeat])
        spread = float(np.max(alive) - np.min(alive))
        if np.ptp(silent_weeks) >= DIFFERENT_RECENCY_WEEKS and spread < FLAT_ALIVE_SPREAD:
            return (
                f"degenerate BG/NBD fit: probability_alive spans only {spread:.3g} across repeat "
                f"buyers whose weeks since their last purchase differ by up to "
                f"{np.ptp(silent_weeks):.0f}"
            )
    return None


def expected_purchases(params: BgNbd, t: float, frequency, recency, T) -> np.ndarray:
    """Expected purchases in the next `t` periods, given each customer's history (equation 10)."""
    x, t_x, T = _arrays(frequency, recency, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    # a = 1 is a removable singularity of the closed form (0 / 0); a step of 2e-7 past it
    # changes the result by far less than the fit's own uncertainty.
    if abs(a - 1) < 1e-7:
        a = 1 + 2e-7
    z = t / (alpha + T + t)
    # ((alpha + T) / (alpha + T + t)) ** (r + x) * 2F1(r + x, b + x; a + b + x - 1; z), rewritten by
    # Euler's transformation as (1 - z) ** (a - 1) * 2F1(a + b - 1 - r, a - 1; a + b + x - 1; z):
    # the same value, but its series stays accurate when the fit finds almost no drop-out
    # (b in the billions), where the original's parameters make hyp2f1 lose all precision.
    hyper = special.hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
    numerator = (a + b + x - 1) / (a - 1) * (1 - np.exp((a - 1) * np.log1p(-z)) * hyper)
    return numerator * probability_alive(params, x, t_x, T)


def gamma_gamma_log_likelihood(params: GammaGamma, frequency, monetary) -> float:
    x, m = _arrays(frequency, monetary)
    p, q, v = params.p, params.q, params.v
    return float(
        np.sum(
            special.gammaln(p * x + q)
            - special.gammaln(p * x)
            - special.gammaln(q)
            + q * np.log(v)
            + (p * x - 1) * np.log(m)
            + p * x * np.log(x)
            - (p * x + q) * np.log(v + x * m)
        )
    )


def fit_gamma_gamma(frequency, monetary) -> GammaGamma:
    """Fit on customers with repeat purchases (frequency > 0) and a positive mean value."""
    x, m = _arrays(frequency, monetary)
    repeat = (x > 0) & (m > 0)
    if repeat.sum() < MIN_REPEAT_CUSTOMERS:
        raise ValueError(
            f"Gamma-Gamma needs at least {MIN_REPEAT_CUSTOMERS} customers with repeat purchases, "
            f"found {int(repeat.sum())}"
        )
    x, m = x[repeat], m[repeat]
    scale = len(x)

    def negative(log_params: np.ndarray) -> float:
        value = gamma_gamma_log_likelihood(GammaGamma(*np.exp(log_params)), x, m)
        return -value / scale if np.isfinite(value) else np.inf

    fitted = GammaGamma(*_fit(negative, [1.0, 1.0, float(np.mean(m))]))
    if fitted.q <= 1:
        raise ValueError(
            f"Gamma-Gamma fit has q = {fitted.q:.3f} <= 1: the expected spend is not finite"
        )
    return fitted


def expected_average_value(params: GammaGamma, frequency, monetary) -> np.ndarray:
    """Expected value of a customer's future transactions; the population mean without repeats."""
    x, m = _arrays(frequency, monetary)
    p, q, v = params.p, params.q, params.v
    population = p * v / (q - 1)
    return np.where(x > 0, (p * (v + x * m)) / (p * x + q - 1), population)


def predicted_value(
    bgnbd: BgNbd, gamma_gamma: GammaGamma, frequency, recency, T, monetary, horizon: float
) -> np.ndarray:
    """Expected spend over `horizon`: expected purchases times expected value (not discounted)."""
    return expected_purchases(bgnbd, horizon, frequency, recency, T) * expected_average_value(
        gamma_gamma, frequency, monetary
    )
