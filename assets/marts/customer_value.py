"""marts.customer_value: predicted 12-month value of every buying customer, and marts.clv_fit:
whether each model's fit can be trusted, and why not.

The models (assets/marts/clv.py) are fitted on this run's marts.purchase_summary, one row per
buying customer: the only step that leaves SQL, because fitting needs an optimizer. Beyond
FIT_SAMPLE buyers they are fitted on a random sample of that many (the same sample on the
same data), and predictions are made for every buyer: the optimizer evaluates the
likelihood over its customers thousands of times, and four parameters are estimated as
well from 50,000 customers as from a million.

Each model's fit ends in one of three statuses (marts.clv_fit):
  fitted      predictions are made from it
  degenerate  it converged, but to the edge of its parameters, where it cannot tell active
              customers from lapsed ones (clv.bgnbd_degeneracy): its predictions are left empty
  not fitted  too few customers, or the optimizer did not converge: predictions left empty
The BG/NBD model gives probability_alive and expected_purchases_12m, the Gamma-Gamma model
expected_average_value; predicted_value_12m needs both.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from assets.marts import clv

HORIZON_WEEKS = 52
FIT_SAMPLE = 50_000
TABLE = "marts.customer_value"
FIT_TABLE = "marts.clv_fit"


def write_customer_value(
    con: duckdb.DuckDBPyConnection, horizon_weeks: float = HORIZON_WEEKS
) -> dict:
    """Fit, predict, write marts.customer_value and marts.clv_fit; returns each model's
    status, reason and parameters."""
    summary = con.execute(
        "select customer_id, frequency, recency_weeks, age_weeks, coalesce(average_repeat_value, 0) as monetary "
        "from marts.purchase_summary order by customer_id"
    ).df()
    frequency = summary["frequency"].to_numpy(dtype=float)
    recency = summary["recency_weeks"].to_numpy(dtype=float)
    age = summary["age_weeks"].to_numpy(dtype=float)
    monetary = summary["monetary"].to_numpy(dtype=float)
    nothing = np.full(len(summary), np.nan)
    alive = expected = average = nothing

    fitted_on = _fit_sample(len(summary))
    purchases = _fit(
        "bg_nbd",
        lambda: clv.fit_bgnbd(frequency[fitted_on], recency[fitted_on], age[fitted_on]),
    )
    if purchases["status"] == "fitted":
        model = clv.BgNbd(**purchases["parameters"])
        purchases["reason"] = clv.bgnbd_degeneracy(model, frequency, recency, age)
        if purchases["reason"] is None:
            alive = clv.probability_alive(model, frequency, recency, age)
            expected = clv.expected_purchases(model, horizon_weeks, frequency, recency, age)
        else:
            purchases["status"] = "degenerate"
    spend = _fit(
        "gamma_gamma", lambda: clv.fit_gamma_gamma(frequency[fitted_on], monetary[fitted_on])
    )
    if spend["status"] == "fitted":
        average = clv.expected_average_value(
            clv.GammaGamma(**spend["parameters"]), frequency, monetary
        )

    predictions = summary[["customer_id"]].assign(
        probability_alive=alive,
        expected_purchases_12m=expected,
        expected_average_value=average,
        predicted_value_12m=expected * average,
    )
    con.register("customer_value_frame", predictions)
    con.execute(f"create or replace table {TABLE} as select * from customer_value_frame")
    con.unregister("customer_value_frame")
    fits = [purchases, spend]
    _write_fits(con, fits, buyers=len(summary), repeat_buyers=int((frequency > 0).sum()))
    return {f["model"]: {k: v for k, v in f.items() if k != "model"} for f in fits}


def _fit_sample(buyers: int, size: int | None = None) -> np.ndarray:
    """Positions of the buyers the models are fitted on: all of them up to `size` (default
    FIT_SAMPLE), else a random `size` of them, the same for the same number of buyers (a
    fixed seed)."""
    size = FIT_SAMPLE if size is None else size
    if buyers <= size:
        return np.arange(buyers)
    return np.sort(np.random.default_rng(0).choice(buyers, size, replace=False))


def _fit(model: str, fit) -> dict:
    """Run a fit: its parameters, or the reason it failed."""
    try:
        fitted = fit()
    except ValueError as err:
        return {"model": model, "status": "not fitted", "reason": str(err), "parameters": None}
    parameters = {name: float(value) for name, value in vars(fitted).items()}
    return {"model": model, "status": "fitted", "reason": None, "parameters": parameters}


def _write_fits(
    con: duckdb.DuckDBPyConnection, fits: list[dict], buyers: int, repeat_buyers: int
) -> None:
    """marts.clv_fit: one row per model; its parameters as a map (parameters['b'])."""
    frame = pd.DataFrame(
        {
            "model": [f["model"] for f in fits],
            "status": [f["status"] for f in fits],
            "reason": [f["reason"] for f in fits],
            "names": [list(f["parameters"] or {}) for f in fits],
            "values": [list((f["parameters"] or {}).values()) for f in fits],
        }
    )
    con.register("clv_fit_frame", frame)
    con.execute(
        f"""
        create or replace table {FIT_TABLE} as
        select
            getvariable('as_of') as as_of_on,
            model,
            status,
            reason,
            map(names::varchar[], values::double[]) as parameters,
            ?::bigint as buyers,
            ?::bigint as repeat_buyers
        from clv_fit_frame
        order by model
        """,
        [buyers, repeat_buyers],
    )
    con.unregister("clv_fit_frame")
