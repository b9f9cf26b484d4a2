"""BG/NBD and Gamma-Gamma: the published worked example, the closed form against a direct
integral over the posterior, hand-computed values, and fits that recover the parameters of
data simulated from the models."""

import numpy as np
import pytest
from scipy import integrate, special

from assets.marts.clv import (
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
    assert expected_purchases(CDNOW, 39, [2], [30.43], [38.86])[0] == pytest.approx(
        1.226, abs=0.001
    )


def posterior_expectation(params: BgNbd, t: float, x: int, t_x: float, T: float) -> float:
    """E[purchases in (T, T+t] | x, t_x, T] by another route than equation (10).

    Given (lambda, p), a customer alive at T buys (1 - exp(-lambda p t)) / p times on average,
    and the posterior weight of "alive with (lambda, p)" is (1-p)^x lambda^x exp(-lambda T)
    times the priors. Integrating lambda out in closed form (gamma integrals) leaves
        E = int_0^1 p^(a-1) (1-p)^(b+x-1) [1 - (1 + p t / (alpha+T))^-(r+x)] / p dp
            / [B(a, b+x) + [x > 0] B(a+1, b+x-1) ((alpha+T) / (alpha+t_x))^(r+x)],
    a one-dimensional integral, done numerically with the Beta weight handled by QUADPACK.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b

    def bracket_over_p(p: float) -> float:
        if p == 0:
            return (r + x) * t / (alpha + T)
        return -np.expm1(-(r + x) * np.log1p(p * t / (alpha + T))) / p

    numerator, _ = integrate.quad(bracket_over_p, 0, 1, weight="alg", wvar=(a - 1, b + x - 1))
    denominator = np.exp(special.betaln(a, b + x))
    if x > 0:
        denominator += np.exp(
            special.betaln(a + 1, b + x - 1) + (r + x) * np.log((alpha + T) / (alpha + t_x))
        )
    return numerator / denominator


@pytest.mark.parametrize(
    "params, x, t_x, T",
    [
        (CDNOW, 2, 30.43, 38.86),
        (CDNOW, 0, 0.0, 38.86),  # no repeat purchase: certainly alive
        (CDNOW, 0, 0.0, 0.0),  # first purchase on the last day
        (CDNOW, 1, 2.0, 50.0),  # probably gone
        (CDNOW, 60, 50.0, 52.0),  # frequent buyer
        (CDNOW, 400, 51.9, 52.0),  # direct 2F1(r+x, b+x; ...) form is far from its comfort zone
        (BgNbd(r=2.0, alpha=1.0, a=3.0, b=0.5), 5, 10.0, 20.0),  # a > 1, b < 1
        (BgNbd(r=0.5, alpha=10.0, a=0.3, b=0.6), 0, 0.0, 10.0),  # a + b < 1: 2F1 with c < 0
    ],
)
def test_expected_purchases_matches_the_posterior_integral(params, x, t_x, T):
    closed_form = float(expected_purchases(params, 39.0, x, t_x, T))
    assert closed_form == pytest.approx(posterior_expectation(params, 39.0, x, t_x, T), rel=1e-8)


def test_expected_purchases_edge_cases():
    # Nothing happens in no time.
    assert expected_purchases(CDNOW, 0.0, [0, 2], [0.0, 30.43], [38.86, 38.86]).tolist() == [0, 0]
    # Vectorized over customers and horizons alike.
    both = expected_purchases(CDNOW, np.array([13.0, 39.0]), 2, 30.43, 38.86)
    assert both[0] < both[1] and both[1] == pytest.approx(1.226, abs=0.01)
    # Almost no dropout (b huge): the model tends to the NBD, where a customer with x repeat
    # purchases in T expects (r + x) / (alpha + T) * t, and stays finite.
    no_dropout = BgNbd(r=0.243, alpha=4.414, a=0.793, b=1e9)
    nbd = (0.243 + np.array([0, 2])) / (4.414 + 38.86) * 39
    no_dropout_expected = expected_purchases(no_dropout, 39, [0, 2], [0, 38.86], [38.86, 38.86])
    assert no_dropout_expected == pytest.approx(nbd, rel=1e-4)
    # a = 1 is a removable singularity of the closed form: finite, and continuous across it.
    near = [
        float(expected_purchases(BgNbd(0.243, 4.414, a, 2.426), 39, 2, 30.43, 38.86))
        for a in (1 - 1e-4, 1.0, 1 + 1e-4)
    ]
    assert np.all(np.isfinite(near))
    assert near[1] == pytest.approx(np.mean([near[0], near[2]]), rel=1e-6)


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
    assert expected_average_value(params, [3, 0], [40.0, 0.0]).tolist() == pytest.approx(
        [810 / 21, 30.0]
    )
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
    with pytest.raises(
        ValueError, match="needs at least 10 customers with repeat purchases, found 0"
    ):
        fit_gamma_gamma([0, 0, 0], [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="recency <= T"):
        fit_bgnbd([1], [10.0], [5.0])
