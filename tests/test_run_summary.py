"""The run summary's seconds per stage, from a hand-written event log."""

from pipelines.summary import slowest_steps, stage_timings

EVENTS = [
    (100.0, "STEP_START", "program"),  # loyalty starts first, but is listed in its place
    (100.5, "STEP_SUCCESS", "program"),
    (100.5, "STEP_START", "raw_deliveries"),
    (102.5, "STEP_SUCCESS", "raw_deliveries"),
    (102.5, "STEP_START", "check_raw"),
    (103.0, "STEP_SUCCESS", "check_raw"),
    (103.0, "STEP_START", "ledger"),
    (104.0, "STEP_FAILURE", "ledger"),  # a failed step's time counts too
    (104.0, "STEP_START", "mystery"),
    (104.25, "STEP_SUCCESS", "mystery"),
    (104.25, "STEP_START", "run_report"),  # never ended: no time, but the stage is listed
]


def test_stage_time_is_the_sum_of_its_steps_in_pipeline_order():
    stage_of_step = {
        "program": "loyalty",
        "raw_deliveries": "ingest",
        "check_raw": "ingest",
        "ledger": "loyalty",
        "run_report": "exports",
    }
    assert stage_timings(EVENTS, stage_of_step) == [
        ("ingest", 2.5),
        ("loyalty", 1.5),
        ("exports", 0.0),
        ("other", 0.25),
    ]


def test_slowest_steps_slowest_first_unfinished_left_out():
    assert slowest_steps(EVENTS, top=3) == [
        ("raw_deliveries", 2.0),
        ("ledger", 1.0),
        ("check_raw", 0.5),
    ]


def test_no_steps_no_stages():
    assert stage_timings([], {"a": "ingest"}) == []
