"""BG/NBD and Gamma-Gamma: the published worked example, hand-computed values, and fits
that recover the parameters of data simulated from the models."""

import numpy as np
import pytest

from assets.clv import (
    BgNbd,
    GammaGamma,
    expected_average_value,
    expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    predicted_value,
    probability_alive,
)

# Fader, Hardie & Lee (2005), fitted to the CDNOW data, in weeks.
CDNOW = BgNbd(r=0.243, alpha=4.414, a=0.793, b=2.426)


def test_the_papers_worked_example():
    # A customer with 2 repeat purchases, the last at week 30.43 of 38.86 observed,
    # expects 1.226 purchases in the next 39 weeks (the paper, section 5).
    assert expected_purchases(CDNOW, 39, [2], [30.43], [38.86])[0] == pytest.approx(1.226, abs=0.001)


def test_probability_alive_by_hand():
    # Without a repeat purchase a customer cannot have dropped out yet.
    assert probability_alive(CDNOW, [0], [0], [38.86])[0] == 1.0
    # x = 2, t_x = 30.43, T = 38.86: 1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)).
    by_hand = 1 / (1 + 0.793 / (2.426 + 1) * ((4.414 + 38.86) / (4.414 + 30.43)) ** (0.243 + 2))
    assert probability_alive(CDNOW, [2], [30.43], [38.86])[0] == pytest.approx(by_hand, rel=1e-12)


def test_expected_average_value_by_hand():
    params = GammaGamma(p=6.0, q=4.0, v=15.0)
    # x = 3, m = 40: 6 * (15 + 3 * 40) / (6 * 3 + 4 - 1) = 810 / 21.
    # x = 0: the population mean p * v / (q - 1) = 90 / 3 = 30.
    assert expected_average_value(params, [3, 0], [40.0, 0.0]).tolist() == pytest.approx([810 / 21, 30.0])
    value = predicted_value(CDNOW, params, [2], [30.43], [38.86], [40.0], 39)[0]
    assert value == pytest.approx(1.22602817 * 6 * (15 + 2 * 40) / (6 * 2 + 4 - 1), rel=1e-6)


def simulate_bgnbd(truth: BgNbd, customers: int, weeks: float, seed: int):
    """Histories drawn from the model itself: Poisson buying, dropping out after a purchase."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(truth.r, 1 / truth.alpha, customers)
    drop = rng.beta(truth.a, truth.b, customers)
    now, last = np.zeros(customers), np.zeros(customers)
    repeats = np.zeros(customers)
    alive = np.ones(customers, dtype=bool)
    while alive.any():
        now = now + rng.exponential(1 / np.maximum(rate, 1e-12))
        bought = alive & (now < weeks)
        repeats += bought
        last = np.where(bought, now, last)
        alive = bought & (rng.random(customers) >= drop)
    return repeats, last, np.full(customers, weeks)


def test_fits_recover_the_parameters_of_simulated_customers():
    truth = BgNbd(r=0.5, alpha=5.0, a=0.8, b=2.5)
    frequency, recency, T = simulate_bgnbd(truth, customers=5000, weeks=52.0, seed=3)
    fitted = fit_bgnbd(frequency, recency, T)
    # 5,000 customers pin r and alpha down well; a and b less so (a drop-out is only seen
    # through its absence), hence the looser bound. Holds for this seed with margin.
    assert fitted.r == pytest.approx(truth.r, rel=0.15)
    assert fitted.alpha == pytest.approx(truth.alpha, rel=0.2)
    assert fitted.a == pytest.approx(truth.a, rel=0.35)
    assert fitted.b == pytest.approx(truth.b, rel=0.35)

    rng = np.random.default_rng(4)
    spend = GammaGamma(p=6.0, q=4.0, v=15.0)
    # p and v trade off against each other; 20,000 customers separate them (3,000 gave p 7.8).
    x = rng.integers(1, 10, 20000)
    nu = rng.gamma(spend.q, 1 / spend.v, 20000)  # each customer's own rate of spend
    mean = rng.gamma(spend.p * x, 1 / nu) / x  # the mean of x transactions ~ Gamma(p, nu) each
    fitted_spend = fit_gamma_gamma(x, mean)
    assert fitted_spend.p == pytest.approx(spend.p, rel=0.1)
    assert fitted_spend.q == pytest.approx(spend.q, rel=0.1)
    assert fitted_spend.v == pytest.approx(spend.v, rel=0.1)


def test_gamma_gamma_needs_repeat_customers():
    with pytest.raises(ValueError, match="needs at least 10 customers with repeat purchases, found 0"):
        fit_gamma_gamma([0, 0, 0], [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="recency <= T"):
        fit_bgnbd([1], [10.0], [5.0])
