"""BG/NBD and Gamma-Gamma: the published worked example, the closed form against a direct
integral over the posterior, hand-computed values, and fits that recover the parameters of
data simulated from the models."""

from datetime import date

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special

from assets.marts.clv import (
    BgNbd,
    GammaGamma,
    bgnbd_degeneracy,
    expected_average_value,
    expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    predicted_value,
    probability_alive,
)
from assets.marts.customer_value import write_customer_value
from assets.shared.warehouse import connect

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


# --- degenerate fits (bgnbd_degeneracy) and what marts.customer_value makes of them ------


def regular_buyers_who_never_stop(customers: int, seed: int):
    """Histories without any drop-out, bought at regular intervals (gamma gaps of shape 4,
    less spread than Poisson's): the BG/NBD fit runs off to b -> infinity, a -> 0, as it
    does on the demo data."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(2.0, 1 / 8.0, customers)  # purchases a week
    T = rng.uniform(20, 104, customers)  # weeks since the first purchase
    repeats, last, now = np.zeros(customers), np.zeros(customers), np.zeros(customers)
    going = np.ones(customers, dtype=bool)
    while going.any():
        now = now + rng.gamma(4.0, 1 / (4.0 * rate))
        going = now < T
        repeats += going
        last = np.where(going, now, last)
    return repeats, last, T


def test_a_fit_that_finds_no_drop_out_is_degenerate():
    x, t_x, T = regular_buyers_who_never_stop(1000, seed=0)
    fitted = fit_bgnbd(x, t_x, T)
    assert fitted.a / (fitted.a + fitted.b) < 1e-6  # the optimizer converged, to the edge
    reason = bgnbd_degeneracy(fitted, x, t_x, T)
    assert reason is not None and reason.startswith(
        "degenerate BG/NBD fit: mean drop-out probability a / (a + b) = "
    )
    # The demo's own fit: probability_alive 1.0 for every buyer.
    demo = BgNbd(r=1.03, alpha=6.08, a=0.00056, b=3.7e11)
    assert "a / (a + b) = 1.51e-15" in bgnbd_degeneracy(demo, [5, 5], [1.0, 90.0], [100.0, 100.0])
    # The other edge: everybody drops out right after a purchase.
    assert "a / (a + b) = 1" in bgnbd_degeneracy(
        BgNbd(r=1.0, alpha=6.0, a=1e9, b=1.0), [1], [1.0], [10.0]
    )


def test_a_flat_probability_alive_across_different_recencies_is_degenerate():
    # E[p] = 1e-4 / 10 = 1e-5: off the edge. But with one repeat purchase each, the odds of
    # having dropped out are 1e-5 * ((6 + 52) / (6 + t_x)) ** 2: 6.865e-4 at t_x = 1 and
    # 1.590e-5 at t_x = 40, so probability_alive is 1 / (1 + odds) = 0.999314 and 0.999984
    # for buyers silent 51 and 12 weeks: a spread of 0.00067, under 0.01.
    params = BgNbd(r=1.0, alpha=6.0, a=1e-4, b=10.0)
    reason = bgnbd_degeneracy(params, [1, 1, 1], [1.0, 20.0, 40.0], [52.0, 52.0, 52.0])
    assert reason == (
        "degenerate BG/NBD fit: probability_alive spans only 0.00067 across repeat buyers "
        "whose weeks since their last purchase differ by up to 39"
    )
    # Buyers equally long silent may well be equally alive: no verdict from them.
    assert bgnbd_degeneracy(params, [1, 1], [20.0, 30.0], [52.0, 62.0]) is None
    # The published CDNOW fit tells recent from lapsed buyers: not degenerate.
    assert bgnbd_degeneracy(CDNOW, [2, 2], [38.0, 2.0], [38.86, 38.86]) is None


def customer_value_warehouse(frequency, recency, T, average_repeat_value):
    con = connect(":memory:", {"as_of": date(2026, 6, 30)})
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(len(frequency))],
            "frequency": np.asarray(frequency, dtype=int),
            "recency_weeks": recency,
            "age_weeks": T,
            "average_repeat_value": average_repeat_value,
        }
    )
    con.register("summary_frame", frame)
    con.execute("create table marts.purchase_summary as select * from summary_frame")
    con.unregister("summary_frame")
    return con


def spend_per_purchase(frequency, seed: int):
    rng = np.random.default_rng(seed)
    return np.where(np.asarray(frequency) > 0, rng.gamma(6.0, 5.0, len(frequency)), np.nan)


def test_a_healthy_fit_predicts_and_tells_recent_from_lapsed_buyers():
    x, t_x, T = simulate_bgnbd(BgNbd(r=0.5, alpha=5.0, a=0.8, b=2.5), 3000, 52.0, seed=3)
    # Two customers of our own, each with 10 repeat purchases in 52 weeks: one bought
    # last in week 51, the other has been silent since week 10.
    x, t_x, T = np.append(x, [10, 10]), np.append(t_x, [51.0, 10.0]), np.append(T, [52.0, 52.0])
    con = customer_value_warehouse(x, t_x, T, spend_per_purchase(x, seed=1))
    fits = write_customer_value(con)
    assert {model: fit["status"] for model, fit in fits.items()} == {
        "bg_nbd": "fitted",
        "gamma_gamma": "fitted",
    }
    assert con.execute(
        "select model, status, reason, parameters['a'] > 0, buyers, as_of_on from marts.clv_fit"
    ).fetchall() == [
        ("bg_nbd", "fitted", None, True, 3002, date(2026, 6, 30)),
        ("gamma_gamma", "fitted", None, None, 3002, date(2026, 6, 30)),
    ]
    recent, lapsed = con.execute(
        "select probability_alive from marts.customer_value "
        "where customer_id in ('C03000', 'C03001') order by customer_id"
    ).fetchall()
    assert recent[0] > 0.9 and lapsed[0] < 0.01
    ((nulls,),) = con.execute(
        "select count(*) from marts.customer_value where predicted_value_12m is null"
    ).fetchall()
    assert nulls == 0


def test_a_degenerate_fit_leaves_its_predictions_empty_and_says_why():
    x, t_x, T = regular_buyers_who_never_stop(1000, seed=1)
    con = customer_value_warehouse(x, t_x, T, spend_per_purchase(x, seed=2))
    fits = write_customer_value(con)
    assert fits["bg_nbd"]["status"] == "degenerate"
    assert fits["bg_nbd"]["reason"].startswith("degenerate BG/NBD fit: mean drop-out probability")
    assert fits["gamma_gamma"]["status"] == "fitted"
    ((status, reason, b, repeat_buyers),) = con.execute(
        "select status, reason, parameters['b'], repeat_buyers from marts.clv_fit where model = 'bg_nbd'"
    ).fetchall()
    assert (status, reason) == ("degenerate", fits["bg_nbd"]["reason"])
    assert b == fits["bg_nbd"]["parameters"]["b"] > 1e5  # kept, to show why
    assert repeat_buyers == int((x > 0).sum())
    # Nothing predicted from the purchases model; the spend model's own column stays.
    assert con.execute(
        "select count(*), count(probability_alive), count(expected_purchases_12m), "
        "count(predicted_value_12m), count(expected_average_value) from marts.customer_value"
    ).fetchall() == [(1000, 0, 0, 0, 1000)]


def test_too_few_repeat_buyers_is_not_fitted_with_the_reason():
    con = customer_value_warehouse(
        [0, 0, 1], [0.0, 0.0, 3.0], [10.0, 20.0, 30.0], [None, None, 5.0]
    )
    fits = write_customer_value(con)
    assert fits["gamma_gamma"] == {
        "status": "not fitted",
        "reason": "Gamma-Gamma needs at least 10 customers with repeat purchases, found 1",
        "parameters": None,
    }
    assert con.execute(
        "select model, status, cardinality(parameters) from marts.clv_fit"
    ).fetchall()[1] == ("gamma_gamma", "not fitted", 0)
    assert con.execute(
        "select count(expected_average_value), count(predicted_value_12m) from marts.customer_value"
    ).fetchall() == [(0, 0)]


def test_beyond_the_sample_size_the_fit_uses_a_sample_and_predicts_for_everyone():
    from assets.marts import customer_value

    truth = BgNbd(r=0.5, alpha=5.0, a=0.8, b=2.5)
    x, t_x, T = simulate_bgnbd(truth, customers=6000, weeks=52.0, seed=3)
    con = customer_value_warehouse(x, t_x, T, spend_per_purchase(x, seed=1))
    sample = customer_value._fit_sample(6000, size=2000)
    assert len(sample) == len(set(sample)) == 2000
    assert list(sample) == list(customer_value._fit_sample(6000, size=2000))  # the same each run
    original = customer_value.FIT_SAMPLE
    customer_value.FIT_SAMPLE = 2000
    try:
        on_sample = write_customer_value(con)["bg_nbd"]["parameters"]
    finally:
        customer_value.FIT_SAMPLE = original
    on_all = write_customer_value(con)["bg_nbd"]["parameters"]
    # A third of the customers estimates r and alpha within a few tenths of the full fit.
    assert on_sample["r"] == pytest.approx(on_all["r"], rel=0.2)
    assert on_sample["alpha"] == pytest.approx(on_all["alpha"], rel=0.25)
    assert on_sample != on_all  # it was fitted on the sample
    ((buyers, predicted),) = con.execute(
        "select count(*), count(probability_alive) from marts.customer_value"
    ).fetchall()
    assert buyers == predicted == 6000
