"""marts.customer_value: predicted 12-month value of every buying customer.

The models (assets/marts/clv.py) are fitted on this run's marts.purchase_summary, one row per
buying customer: the only step that leaves SQL, because fitting needs an optimizer. With
too few repeat buyers to fit, the predictions are left empty and the reason returned.
"""

from __future__ import annotations

import duckdb
import numpy as np

from assets.marts import clv

HORIZON_WEEKS = 52
TABLE = "marts.customer_value"


def write_customer_value(
    con: duckdb.DuckDBPyConnection, horizon_weeks: float = HORIZON_WEEKS
) -> dict:
    """Fit, predict and write marts.customer_value; returns the fitted parameters (or why not)."""
    summary = con.execute(
        "select customer_id, frequency, recency_weeks, age_weeks, coalesce(average_repeat_value, 0) as monetary "
        "from marts.purchase_summary order by customer_id"
    ).df()
    frequency = summary["frequency"].to_numpy(dtype=float)
    recency = summary["recency_weeks"].to_numpy(dtype=float)
    age = summary["age_weeks"].to_numpy(dtype=float)
    monetary = summary["monetary"].to_numpy(dtype=float)
    try:
        purchases_model = clv.fit_bgnbd(frequency, recency, age)
        spend_model = clv.fit_gamma_gamma(frequency, monetary)
    except ValueError as err:
        nothing = np.full(len(summary), np.nan)
        alive = expected = average = value = nothing
        fitted = {"fitted": False, "reason": str(err)}
    else:
        alive = clv.probability_alive(purchases_model, frequency, recency, age)
        expected = clv.expected_purchases(purchases_model, horizon_weeks, frequency, recency, age)
        average = clv.expected_average_value(spend_model, frequency, monetary)
        value = expected * average
        fitted = {"fitted": True, "bgnbd": vars(purchases_model), "gamma_gamma": vars(spend_model)}
    summary = summary[["customer_id"]].assign(
        probability_alive=alive,
        expected_purchases_12m=expected,
        expected_average_value=average,
        predicted_value_12m=value,
    )
    con.register("customer_value_frame", summary)
    con.execute(f"create or replace table {TABLE} as select * from customer_value_frame")
    con.unregister("customer_value_frame")
    return fitted
