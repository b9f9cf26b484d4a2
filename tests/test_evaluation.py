"""Accuracy measures on a hand-made clustering."""

import pytest

from assets.identity.evaluation import evaluate
from assets.shared.warehouse import connect


def test_pairwise_and_bcubed_on_a_hand_made_case(tmp_path):
    # Truth: P1 = {a, b, c}, P2 = {d, e}.  Prediction: X = {a, b}, Y = {c, d, e}; f is not in the truth.
    warehouse = tmp_path / "w.duckdb"
    con = connect(warehouse)
    con.execute(
        "create table identity.source_records as select * from (values "
        "('web', 'a', 'X'), ('web', 'b', 'X'), ('app', 'c', 'Y'), ('app', 'd', 'Y'), ('store', 'e', 'Y'), ('store', 'f', 'Z')) "
        "t(source, source_record_id, customer_id)"
    )
    con.close()
    truth = tmp_path / "truth.csv"
    truth.write_text(
        "source,source_record_id,person_id\nweb,a,P1\nweb,b,P1\napp,c,P1\napp,d,P2\nstore,e,P2\nweb,q,P3\n"
    )
    result = evaluate(warehouse, truth)
    # Predicted pairs: ab, cd, ce, de = 4. True pairs: ab, ac, bc, de = 4. Correct: ab, de = 2.
    assert (result.records, result.predicted_pairs, result.true_pairs, result.correct_pairs) == (
        5,
        4,
        4,
        2,
    )
    assert result.precision == pytest.approx(0.5)
    assert result.recall == pytest.approx(0.5)
    assert result.f1 == pytest.approx(0.5)
    # B-cubed precision: a, b: 2/2; c: 1/3; d, e: 2/3 -> (1 + 1 + 1/3 + 2/3 + 2/3) / 5 = 11/15.
    assert result.bcubed_precision == pytest.approx(11 / 15)
    # B-cubed recall: a, b: 2/3; c: 1/3; d, e: 2/2 -> (2/3 + 2/3 + 1/3 + 1 + 1) / 5 = 11/15.
    assert result.bcubed_recall == pytest.approx(11 / 15)
