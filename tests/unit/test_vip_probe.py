"""scripts/bench/vip.py: the failover read from a prober's answers, and the failed requests split around it."""

from __future__ import annotations

from pathlib import Path

from script_module import load_script

vip = load_script(Path(__file__).resolve().parents[2] / "scripts" / "bench" / "vip.py", "vip_probe")

FAILURES = ("connect", "reset", "timeout", "5xx")


def prober_with(answers):
    prober = vip.VipProber("192.0.2.250")
    prober.answers = answers
    return prober


def test_the_failover_is_the_first_good_answer_from_another_balancer():
    prober = prober_with([(10.0, 200, "lb1"), (10.5, None, ""), (11.0, 503, "lb2"), (11.2, 200, "lb1"),
                          (11.9, 200, "lb2"), (12.0, 200, "lb2")])
    assert prober.first_answer(10.4, "lb1") == 11.9
    assert prober.first_answer(12.5, "lb1") is None
    assert prober.balancers_since(10.0) == ["lb1", "lb2"]


def test_changes_name_the_gaps():
    answers = [(1.0, 200, "lb1"), (1.1, 200, "lb1"), (1.2, None, ""), (1.3, None, ""), (1.4, 200, "lb2")]
    assert vip.changes(answers) == [(1.0, "lb1"), (1.2, "(no answer)"), (1.4, "lb2")]


def test_failed_requests_are_split_into_in_flight_in_the_gap_and_after():
    records = [
        {"t": 9.0, "latency_ms": 2000, "error": "timeout"},  # sent before the fault at 10, ended after it
        {"t": 9.0, "latency_ms": 100, "error": "reset"},  # ended before the fault: none of the three
        {"t": 10.5, "latency_ms": 5000, "error": "timeout"},  # in the gap
        {"t": 10.6, "latency_ms": 10, "error": None},  # answered: not counted
        {"t": 12.5, "latency_ms": 10, "error": "5xx"},  # after the failover at 12
        {"t": 12.6, "latency_ms": 10, "error": "429"},  # a rejection, not a failure
    ]
    assert vip.failed_around(records, 10.0, 12.0, FAILURES) == {"in_flight": 1, "in_the_gap": 1, "after": 1}
    # No failover: everything from the fault on is in the gap.
    assert vip.failed_around(records, 10.0, None, FAILURES) == {"in_flight": 1, "in_the_gap": 2, "after": 0}


def test_a_balancer_back_on_the_holder_after_a_gap_is_told_from_a_failover():
    prober = prober_with([(10.0, 200, "lb1"), (10.1, None, ""), (10.2, None, ""), (10.3, 200, "lb1"), (10.4, 200, "lb1")])
    assert prober.back_after_gap(10.0, "lb1") == 10.3
    assert prober.first_answer(10.0, "lb1") is None
    assert prober.gap_seen(10.0) and not prober.gap_seen(10.3)
    # No gap: the holder answering all along is not "back".
    assert prober_with([(10.0, 200, "lb1"), (10.5, 200, "lb1")]).back_after_gap(10.0, "lb1") is None
