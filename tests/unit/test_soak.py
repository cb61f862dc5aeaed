"""The soak's schedule, outage windows and verdict (pure)."""

import itertools

from devtools.soak_faults import GRACE_SECONDS, Fault, schedule
from devtools.soak_result import _overlaps, passed


def test_the_schedule_kills_a_projector_three_times_and_spreads_the_faults_over_the_run():
    planned = schedule(("projector", "redis", "broker", "api", "rebuild"), 600)
    kinds = [kind for _, kind in planned]
    assert kinds.count("projector") == 3 and set(kinds) == {"projector", "redis", "broker", "api", "rebuild"}
    times = [at for at, _ in planned]
    assert times == sorted(times) and times[0] > 0 and times[-1] < 0.85 * 600
    assert 0.4 * 600 < dict((kind, at) for at, kind in planned)["rebuild"] < 0.7 * 600  # in the middle
    assert [kind for _, kind in schedule(("api",), 60)] == ["api"]
    assert schedule((), 60) == []


def test_an_outage_window_runs_from_injection_to_recovery_plus_grace_or_to_the_end_when_unrecovered():
    assert Fault("redis", 10.0, 1.5).window(60.0) == (10.0, 11.5 + GRACE_SECONDS)
    assert Fault("redis", 10.0, None).window(60.0) == (10.0, 60.0 + GRACE_SECONDS)
    windows = [Fault("api", 20.0, 1.0).window(60.0)]
    assert _overlaps(19.9, 20.1, windows) and _overlaps(22.9, 23.5, windows)
    assert not _overlaps(18.0, 19.9, windows) and not _overlaps(23.1, 24.0, windows)


def _result(**changes) -> dict:
    result = {"drift": 0, "lost_events": 0, "reads": {"non2xx_outside_outages": 0}, "faults": []}
    result["faults"] = [{"kind": "redis", "at_s": 1.0, "recovered_after_s": 2.0}]
    return {**result, **changes}


def test_a_run_passes_only_without_drift_lost_events_failed_reads_outside_outages_or_unrecovered_faults():
    assert passed(_result())
    assert not passed(_result(drift=1))
    assert not passed(_result(lost_events=3))
    assert not passed(_result(reads={"non2xx_outside_outages": 1}))
    assert not passed(_result(faults=[{"kind": "api", "at_s": 5.0, "recovered_after_s": None}]))


def test_drift_counts_each_customer_that_differs_from_the_fold_or_is_missing_once():
    from consumers.verify import differing_customers
    from devtools.synthetic import Load, generate, ongoing
    from projections.fold import fold_log

    load = Load(customers=30, events_per_customer=1)
    registrations = [value for _, _, value in generate(load)]
    more = [value for _, _, value in itertools.islice(ongoing(load), 300)]
    folded = fold_log(registrations + more)
    stored = fold_log(registrations + more[:-1])  # the last event of one customer not applied
    missing = dict(folded)
    gone = missing.pop(next(iter(missing)))
    assert differing_customers(folded, fold_log(registrations + more)) == []
    assert differing_customers(folded, stored) == [next(k for k, c in folded.items() if c != stored[k])]
    assert differing_customers(folded, missing) == [(gone.orgId, gone.customerId)]
