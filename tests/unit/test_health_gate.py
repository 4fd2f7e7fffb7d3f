"""Specification of the ``health_gate`` module, against a real local HTTP server."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import health_gate as hg
from ansible.module_utils.testing import patch_module_args
from fake_time import FakeTime
from scripted_http import Reply, ScriptedServer, free_port, self_signed_server_context

REPO_ROOT = Path(__file__).resolve().parents[2]

READY = {"status": "ready", "version": "1.4.2"}
EXPECT_READY = {"status": "ready", "version": "1.4.2"}

StartServer = Callable[..., ScriptedServer]


def gate(url: str, **options: Any) -> hg.GateSpec:
    params = {
        "url": url,
        "expect_status": [200],
        "expect_json": None,
        "successes": 3,
        "interval": 0.05,
        "timeout": 10.0,  # the passing scenarios end long before; failing ones set their own
        "request_timeout": 2.0,
        "validate_certs": True,
        "headers": None,
    }
    params.update(options)
    return hg.validate_options(params)


def run_gate(spec: hg.GateSpec) -> hg.GateOutcome:
    return hg.wait_until_ready(spec, lambda: hg.check_once(spec))


# ---- against a real server: the scenarios a rollout meets ----------------------------------------


def test_passes_once_the_endpoint_becomes_ready_after_a_delay(start_server: StartServer) -> None:
    def ready_after_a_delay(number: int, seconds: float) -> Reply:
        if number < 2 or seconds < 0.3:
            return Reply(503, {"status": "starting"})
        return Reply(200, READY)

    server = start_server(ready_after_a_delay)
    spec = gate(server.url(), expect_json=EXPECT_READY)
    outcome = run_gate(spec)
    assert outcome.passed
    assert outcome.attempts >= 5  # at least two 503s, then three passes in a row
    assert outcome.elapsed >= (outcome.attempts - 1) * spec.interval
    assert outcome.last.status == 200
    assert outcome.last.json == READY
    assert outcome.last_failure.status == 503


def test_an_endpoint_that_is_never_ready_fails_at_the_timeout_with_the_last_status_and_body(
    start_server: StartServer,
) -> None:
    server = start_server(lambda n, t: Reply(503, "warming up the caches"))
    spec = gate(server.url(), timeout=0.5)
    outcome = run_gate(spec)
    assert not outcome.passed
    assert outcome.elapsed >= spec.timeout - spec.interval  # it did not give up early
    message = hg.failure_message(spec, outcome)
    assert "HTTP 503" in message
    assert "warming up the caches" in message
    assert "status 503 is not one of [200]" in message


def test_a_flapping_endpoint_never_passes(start_server: StartServer) -> None:
    server = start_server(lambda n, t: Reply(200, READY) if n % 2 == 0 else Reply(503, "overloaded"))
    spec = gate(server.url(), successes=2, interval=0.1, timeout=1.0)
    # Real requests, fake time: ten checks whatever the load on the machine.
    fake = FakeTime()

    def check_taking_a_tenth_of_a_second() -> hg.CheckResult:
        fake.now += 0.1
        return hg.check_once(spec)

    outcome = hg.wait_until_ready(spec, check_taking_a_tenth_of_a_second, fake.clock, fake.sleep)
    assert not outcome.passed
    assert outcome.attempts == len(server.requests) == 10
    message = hg.failure_message(spec, outcome)
    assert "Last check: status 503 is not one of [200] (HTTP 503, body 'overloaded')" in message


def test_the_wrong_version_fails_saying_what_was_expected_and_seen(start_server: StartServer) -> None:
    server = start_server(lambda n, t: Reply(200, {"status": "ready", "version": "1.4.1"}))
    spec = gate(server.url(), expect_json=EXPECT_READY, timeout=0.3)
    outcome = run_gate(spec)
    assert not outcome.passed
    assert outcome.last.json == {"status": "ready", "version": "1.4.1"}
    assert 'version is "1.4.1", expected "1.4.2"' in hg.failure_message(spec, outcome)


def test_a_slow_endpoint_is_abandoned_at_the_request_timeout(start_server: StartServer) -> None:
    """The answer would be ready, after 5 s: a check abandoned at 0.4 s fails saying so."""
    server = start_server(lambda n, t: Reply(200, READY, delay=5))
    spec = gate(server.url(), timeout=0.7, request_timeout=0.4)
    result = hg.check_once(spec)
    assert not result.passed
    assert result.problem == "no complete response within 0.4s"
    assert result.status is None


@pytest.mark.parametrize("error", [TimeoutError("timed out"), hg.URLError(TimeoutError("timed out"))])
def test_a_socket_timeout_reads_as_the_request_timeout(error: Exception) -> None:
    """The socket timeout equals the deadline, so on a busy machine it may fire first: the check
    says the same thing either way (CI saw "no response: TimeoutError" once)."""

    def opener(*args: Any, **kwargs: Any) -> Any:
        raise error

    result = hg.check_once(gate("http://127.0.0.1:9/ready", request_timeout=0.4), opener=opener)
    assert not result.passed
    assert result.problem == "no complete response within 0.4s"


def test_a_refused_connection_is_not_read_as_a_timeout() -> None:
    def opener(*args: Any, **kwargs: Any) -> Any:
        raise hg.URLError(ConnectionRefusedError(111, "Connection refused"))

    result = hg.check_once(gate("http://127.0.0.1:9/ready"), opener=opener)
    assert result.problem == "no response: ConnectionRefusedError: [Errno 111] Connection refused"


def test_an_endpoint_trickling_its_body_is_abandoned_at_the_request_timeout(start_server: StartServer) -> None:
    """Each byte comes well within the socket timeout, so only a deadline on the whole request helps:
    without it, the whole ready body would arrive after about 3.5 s and the check would pass."""
    server = start_server(lambda n, t: Reply(200, READY, byte_pause=0.1))
    spec = gate(server.url(), timeout=0.8, request_timeout=0.3)
    result = hg.check_once(spec)
    assert not result.passed
    assert result.problem == "no complete response within 0.3s"


def test_no_check_starts_at_or_after_the_timeout() -> None:
    """Fake time, each check taking the whole request timeout: the gate cannot run past its timeout
    by more than the one check that started before it."""
    spec = gate("http://127.0.0.1:9/ready", timeout=1.0, request_timeout=0.4, interval=0.1)
    fake = FakeTime()
    starts: list[float] = []

    def check_taking_the_request_timeout() -> hg.CheckResult:
        starts.append(fake.now - 1000.0)
        fake.now += spec.request_timeout
        return hg.CheckResult(passed=False, problem="no complete response within 0.4s")

    outcome = hg.wait_until_ready(spec, check_taking_the_request_timeout, fake.clock, fake.sleep)
    assert not outcome.passed
    assert starts == pytest.approx([0.0, 0.4, 0.8])
    assert outcome.elapsed == pytest.approx(1.2)
    assert "no complete response within 0.4s" in hg.failure_message(spec, outcome)


def test_connection_refused_then_ready_passes(start_server: StartServer) -> None:
    port = free_port()
    spec = gate(f"http://127.0.0.1:{port}/ready", expect_json=EXPECT_READY)
    refusals = 0

    def check_and_start_the_server_after_two_refusals() -> hg.CheckResult:
        nonlocal refusals
        result = hg.check_once(spec)
        if result.status is None:
            refusals += 1
            if refusals == 2:
                start_server(lambda n, t: Reply(200, READY), port=port)
        return result

    outcome = hg.wait_until_ready(spec, check_and_start_the_server_after_two_refusals)
    assert outcome.passed
    assert outcome.attempts == 5
    assert "refused" in outcome.last_failure.problem.lower()


def test_connection_refused_until_the_timeout_reports_the_connection_error() -> None:
    spec = gate(f"http://127.0.0.1:{free_port()}/ready", timeout=0.3)
    outcome = run_gate(spec)
    assert not outcome.passed
    assert outcome.last.status is None
    assert "Connection refused" in hg.failure_message(spec, outcome)


def test_the_headers_are_sent(start_server: StartServer) -> None:
    server = start_server(lambda n, t: Reply(200, READY))
    outcome = run_gate(gate(server.url(), successes=1, headers={"Host": "app.lab.internal", "X-Probe": "rollgate"}))
    assert outcome.passed
    assert server.requests[0].headers["Host"] == "app.lab.internal"
    assert server.requests[0].headers["X-Probe"] == "rollgate"


def test_any_status_in_expect_status_passes(start_server: StartServer) -> None:
    server = start_server(lambda n, t: Reply(204 if n % 2 else 200, b""))
    assert run_gate(gate(server.url(), expect_status=[200, 204])).passed


def test_an_error_status_can_be_expected(start_server: StartServer) -> None:
    server = start_server(lambda n, t: Reply(503, {"status": "maintenance"}))
    outcome = run_gate(gate(server.url(), expect_status=[503], expect_json={"status": "maintenance"}))
    assert outcome.passed
    assert outcome.last.json == {"status": "maintenance"}


def test_a_body_that_is_not_json_fails_when_json_is_expected(start_server: StartServer) -> None:
    server = start_server(lambda n, t: Reply(200, "OK"))
    spec = gate(server.url(), expect_json={"status": "ready"}, timeout=0.2)
    outcome = run_gate(spec)
    assert not outcome.passed
    assert "body is not JSON" in hg.failure_message(spec, outcome)


def test_a_self_signed_certificate_fails_unless_validate_certs_is_false(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server(lambda n, t: Reply(200, READY), tls=self_signed_server_context(tmp_path))
    url = server.url().replace("http://", "https://")

    checked = gate(url, successes=1, timeout=0.3)
    refused = run_gate(checked)
    assert not refused.passed
    assert "CERTIFICATE_VERIFY_FAILED" in hg.failure_message(checked, refused)

    trusted = run_gate(gate(url, successes=1, validate_certs=False))
    assert trusted.passed
    assert trusted.last.json == READY


# ---- option validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"url": "ftp://example.com/ready"}, "url must be an http:// or https:// URL"),
        ({"url": "localhost:8000/ready"}, "url must be an http:// or https:// URL"),
        ({"url": "http:///ready"}, "url must be an http:// or https:// URL"),
        ({"url": "http://127.0.0.1:99999/ready"}, "url must be an http:// or https:// URL"),
        ({"url": "http://app.example/ready now"}, "url must be an http:// or https:// URL"),
        ({"successes": 0}, "successes must be at least 1, got 0"),
        ({"interval": 0.0}, "interval must be a number of seconds greater than 0, got 0.0"),
        ({"interval": -1.0}, "interval must be a number of seconds greater than 0, got -1.0"),
        ({"timeout": 0.0}, "timeout must be a number of seconds greater than 0"),
        ({"timeout": float("inf")}, "timeout must be a number of seconds greater than 0"),
        ({"request_timeout": 0.0}, "request_timeout must be a number of seconds greater than 0"),
        ({"expect_status": []}, "expect_status must list at least one HTTP status"),
        ({"expect_status": [200, 42]}, "between 100 and 599, got 42"),
    ],
)
def test_invalid_options_are_rejected_with_a_clear_message(options: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match="invalid options") as raised:
        gate(options.pop("url", "http://127.0.0.1:8000/ready"), **options)
    assert expected in str(raised.value)


def test_every_invalid_option_is_reported_at_once() -> None:
    with pytest.raises(ValueError) as raised:
        gate("gopher://x", successes=0, interval=0.0)
    assert str(raised.value).count(";") == 2


def test_valid_options_keep_their_values() -> None:
    spec = gate("https://app.example/ready", successes=5, interval=0.5, headers={"X-Retry": 3})
    assert (spec.url, spec.successes, spec.interval, spec.headers) == (
        "https://app.example/ready",
        5,
        0.5,
        {"X-Retry": "3"},
    )


# ---- matching the JSON body ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ({"status": "ready"}, {"status": "ready", "uptime": 12}),
        ({"db": {"ok": True}}, {"db": {"ok": True, "latency_ms": 3}, "status": "ready"}),
        ({"replicas": [1, 2]}, {"replicas": [1, 2]}),
        ({"load": 1}, {"load": 1.0}),
        ({}, {"anything": None}),
        ({"nothing": None}, {"nothing": None}),
    ],
)
def test_a_json_subset_matches(expected: dict[str, Any], actual: Any) -> None:
    assert hg.json_subset_mismatch(expected, actual) is None


@pytest.mark.parametrize(
    ("expected", "actual", "problem"),
    [
        ({"status": "ready"}, {"status": "starting"}, 'status is "starting", expected "ready"'),
        ({"status": "ready"}, {}, 'status is missing, expected "ready"'),
        ({"db": {"ok": True}}, {"db": {"ok": False}}, "db.ok is false, expected true"),
        ({"db": {"ok": True}}, {"db": "up"}, 'db is "up", expected a JSON object'),
        ({"version": "2"}, {"version": 2}, 'version is 2, expected "2"'),
        ({"ok": True}, {"ok": 1}, "ok is 1, expected true"),
        ({"count": 1}, {"count": True}, "count is true, expected 1"),
        ({"replicas": [1, 2]}, {"replicas": [2, 1]}, "replicas is [2, 1], expected [1, 2]"),
        ({"replicas": [1]}, {"replicas": [1, 2]}, "replicas is [1, 2], expected [1]"),
        ({"status": "ready"}, ["ready"], 'the body is ["ready"], expected a JSON object'),
    ],
)
def test_a_json_mismatch_names_the_key_and_both_values(expected: dict[str, Any], actual: Any, problem: str) -> None:
    assert hg.json_subset_mismatch(expected, actual) == problem


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
json_objects = st.recursive(
    st.dictionaries(st.text(max_size=4), json_scalars, max_size=4),
    lambda children: st.dictionaries(st.text(max_size=4), st.one_of(json_scalars, children), max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(json_objects, st.data())
def test_any_part_of_a_body_matches_it(body: dict[str, Any], data: st.DataObject) -> None:
    def part_of(document: dict[str, Any]) -> dict[str, Any]:
        keys = data.draw(st.lists(st.sampled_from(sorted(document)), unique=True)) if document else []
        return {key: part_of(document[key]) if isinstance(document[key], dict) else document[key] for key in keys}

    assert hg.json_subset_mismatch(part_of(body), json.loads(json.dumps(body))) is None


# ---- the loop, with a fake clock -----------------------------------------------------------------


class ScriptedChecks:
    """Checks that pass or fail in the given order (the last result repeats), each taking
    ``duration`` seconds of fake time, or the request timeout if that is shorter."""

    def __init__(self, fake: FakeTime, spec: hg.GateSpec, results: list[bool], duration: float = 0.0) -> None:
        self.fake, self.spec, self.results, self.duration = fake, spec, results, duration
        self.started_at: list[float] = []

    def __call__(self) -> hg.CheckResult:
        self.started_at.append(self.fake.now)
        self.fake.now += min(self.duration, self.spec.request_timeout)
        passed = self.results[min(len(self.started_at), len(self.results)) - 1]
        return hg.CheckResult(passed, status=200 if passed else 503, problem="" if passed else "status 503")


def test_one_failure_resets_the_count() -> None:
    fake = FakeTime()
    spec = gate("http://x/ready", successes=3, interval=1.0, timeout=60.0)
    checks = ScriptedChecks(fake, spec, [True, True, False, True, True, True])
    outcome = hg.wait_until_ready(spec, checks, fake.clock, fake.sleep)
    assert outcome.passed
    assert outcome.attempts == 6


def test_checks_start_every_interval() -> None:
    fake = FakeTime()
    spec = gate("http://x/ready", successes=3, interval=2.0, timeout=60.0)
    checks = ScriptedChecks(fake, spec, [False, True], duration=0.5)
    hg.wait_until_ready(spec, checks, fake.clock, fake.sleep)
    assert [at - checks.started_at[0] for at in checks.started_at] == [0.0, 2.0, 4.0, 6.0]


def test_a_check_slower_than_the_interval_is_followed_at_once() -> None:
    fake = FakeTime()
    spec = gate("http://x/ready", successes=2, interval=0.5, timeout=60.0, request_timeout=2.0)
    checks = ScriptedChecks(fake, spec, [True], duration=1.5)
    hg.wait_until_ready(spec, checks, fake.clock, fake.sleep)
    assert fake.sleeps == []
    assert checks.started_at == [1000.0, 1001.5]


def test_no_check_starts_after_the_timeout() -> None:
    fake = FakeTime()
    spec = gate("http://x/ready", interval=1.0, timeout=2.5, request_timeout=2.0)
    checks = ScriptedChecks(fake, spec, [False], duration=0.1)
    outcome = hg.wait_until_ready(spec, checks, fake.clock, fake.sleep)
    assert not outcome.passed
    assert [at - 1000.0 for at in checks.started_at] == [0.0, 1.0, 2.0]


def test_a_connection_error_after_a_response_also_reports_that_response(start_server: StartServer) -> None:
    server = start_server(lambda n, t: Reply(503, "draining"))
    spec = gate(server.url(), timeout=5.0)
    gone = dataclasses.replace(spec, url=f"http://127.0.0.1:{free_port()}/ready")
    fake = FakeTime()
    attempts = 0

    def server_goes_away_after_two_checks() -> hg.CheckResult:
        nonlocal attempts
        attempts += 1
        fake.now += 1.0
        return hg.check_once(spec if attempts <= 2 else gone)

    outcome = hg.wait_until_ready(spec, server_goes_away_after_two_checks, fake.clock, fake.sleep)
    message = hg.failure_message(spec, outcome)
    assert "Last check: no response: ConnectionRefusedError" in message
    assert "Last HTTP response: status 503 is not one of [200] (HTTP 503, body 'draining')" in message


@settings(max_examples=200, deadline=None)
@given(
    results=st.lists(st.booleans(), min_size=1, max_size=40),
    successes=st.integers(min_value=1, max_value=5),
    interval=st.floats(min_value=0.01, max_value=5),
    timeout=st.floats(min_value=0.01, max_value=60),
    request_timeout=st.floats(min_value=0.01, max_value=10),
    duration=st.floats(min_value=0, max_value=20),
)
def test_the_loop_passes_exactly_on_a_full_streak_and_overruns_by_at_most_one_request_timeout(
    results: list[bool], successes: int, interval: float, timeout: float, request_timeout: float, duration: float
) -> None:
    fake = FakeTime()
    started = fake.now
    spec = gate(
        "http://x/ready", successes=successes, interval=interval, timeout=timeout, request_timeout=request_timeout
    )
    checks = ScriptedChecks(fake, spec, results, duration)
    outcome = hg.wait_until_ready(spec, checks, fake.clock, fake.sleep)

    assert fake.now - started <= timeout + request_timeout
    assert all(at < started + timeout for at in checks.started_at)
    assert outcome.attempts == len(checks.started_at)
    seen = [results[min(index, len(results) - 1)] for index in range(outcome.attempts)]
    full_streaks_before_the_end = [all(seen[i : i + successes]) for i in range(max(0, len(seen) - successes))]
    assert not any(full_streaks_before_the_end), "the loop went on after a full streak"
    assert outcome.passed == (len(seen) >= successes and all(seen[-successes:]))
    if not outcome.passed:
        assert max(checks.started_at[-1] + interval, fake.now) >= started + timeout, "gave up with time left"


# ---- the module, run as a user runs it -----------------------------------------------------------


def run_ansible(
    args: dict[str, Any], env: dict[str, str], *extra: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run ``ansible localhost -m health_gate -a <json>`` from the repository root; return the
    process and the task result it printed (``localhost | STATE => {...}``)."""
    completed = subprocess.run(
        ["ansible", "localhost", "-m", "health_gate", "-a", json.dumps(args), *extra],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    result_line = re.search(r"^localhost \| [A-Z!]+ => ", completed.stdout, re.MULTILINE)
    assert result_line, completed.stdout + completed.stderr
    return completed, json.loads(completed.stdout[result_line.end() :])


def test_the_ansible_command_passes_when_the_endpoint_is_ready(
    start_server: StartServer, ansible_env: dict[str, str]
) -> None:
    server = start_server(lambda n, t: Reply(200, READY) if n >= 1 else Reply(503, "starting"))
    completed, result = run_ansible({"url": server.url(), "expect_json": EXPECT_READY, "interval": 0.05}, ansible_env)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "localhost | SUCCESS =>" in completed.stdout
    assert result["attempts"] == 4 == len(server.requests)
    assert result["status"] == 200
    assert result["json"] == READY
    assert result["changed"] is False
    assert result["elapsed"] >= 0.15


def test_the_ansible_command_fails_at_the_timeout_saying_what_it_saw(
    start_server: StartServer, ansible_env: dict[str, str]
) -> None:
    server = start_server(lambda n, t: Reply(200, {"status": "ready", "version": "1.4.1"}))
    completed, result = run_ansible(
        {"url": server.url(), "expect_json": EXPECT_READY, "interval": 0.1, "timeout": 0.5}, ansible_env
    )
    assert completed.returncode == 2
    assert "localhost | FAILED! =>" in completed.stdout
    assert "did not pass 3 checks in a row within the 0.5s timeout" in result["msg"]
    assert (
        'version is "1.4.1", expected "1.4.2" (HTTP 200, body \'{"status": "ready", "version": "1.4.1"}\')'
        in result["msg"]
    )
    assert result["status"] == 200
    assert result["json"] == {"status": "ready", "version": "1.4.1"}
    assert "Traceback" not in completed.stdout + completed.stderr


# ---- main(), in process: the wiring the CLI tests above do not reach ---------------------------


def run_main(args: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """Run the module's main() as Ansible would and return the JSON result it prints."""
    with patch_module_args(args), pytest.raises(SystemExit):
        hg.main()
    return json.loads(capsys.readouterr().out)


def test_invalid_options_fail_at_once_with_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_main({"url": "ftp://example.com/", "successes": 0, "interval": -1}, capsys)
    assert result["failed"] is True
    assert "attempts" not in result  # refused before any check
    assert result["msg"] == (
        "health_gate: invalid options: url must be an http:// or https:// URL with a host, got 'ftp://example.com/'; "
        "successes must be at least 1, got 0; interval must be a number of seconds greater than 0, got -1.0"
    )


def test_check_mode_makes_one_request_and_does_not_fail(
    start_server: StartServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_server(lambda n, t: Reply(503, "starting"))
    result = run_main({"url": server.url(), "timeout": 30, "_ansible_check_mode": True}, capsys)
    assert "failed" not in result
    assert result["changed"] is False
    assert result["passed"] is False
    assert result["status"] == 503
    assert (
        result["msg"] == "check mode: one check, no waiting: status 503 is not one of [200] (HTTP 503, body 'starting')"
    )
    assert len(server.requests) == 1


def test_an_unexpected_error_is_a_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(spec: hg.GateSpec) -> hg.CheckResult:
        raise RuntimeError("the probe broke")

    monkeypatch.setattr(hg, "check_once", broken)
    result = run_main({"url": "http://127.0.0.1:8000/ready"}, capsys)
    assert result["failed"] is True
    assert result["msg"] == "health_gate: unexpected RuntimeError: the probe broke"


# ---- several endpoints at once (urls): a whole batch of instances ------------------------------


def endpoints_params(urls: dict[str, Any], **options: Any) -> dict[str, Any]:
    params = {
        "url": None,
        "urls": urls,
        "expect_status": [200],
        "expect_json": None,
        "successes": 2,
        "interval": 0.05,
        "timeout": 10.0,
        "request_timeout": 2.0,
        "validate_certs": True,
        "headers": None,
    }
    params.update(options)
    return params


def run_endpoints(
    params: dict[str, Any], fake_time: bool = False
) -> tuple[dict[str, hg.GateSpec], dict[str, hg.GateOutcome]]:
    """Gate every endpoint at once, on real time, or each on its own fake clock (only sleeps advance it),
    for a verdict that does not depend on how busy the machine is."""
    specs = hg.validate_endpoints(params)

    def gate_one(spec: hg.GateSpec) -> hg.GateOutcome:
        if not fake_time:
            return hg.wait_until_ready(spec, lambda: hg.check_once(spec))
        fake = FakeTime()
        return hg.wait_until_ready(spec, lambda: hg.check_once(spec), fake.clock, fake.sleep)

    return specs, hg.wait_until_all_ready(specs, gate_one)


def test_every_endpoint_gets_its_own_spec_with_the_shared_expectations() -> None:
    specs = hg.validate_endpoints(
        endpoints_params({"app1_8000": "http://10.0.0.1:8000/r", "app2_8000": "http://10.0.0.2:8000/r"},
                         expect_json=EXPECT_READY, successes=3)
    )
    assert {name: spec.url for name, spec in specs.items()} == {
        "app1_8000": "http://10.0.0.1:8000/r",
        "app2_8000": "http://10.0.0.2:8000/r",
    }
    assert all(spec.expect_json == EXPECT_READY and spec.successes == 3 for spec in specs.values())


def test_a_single_url_is_one_endpoint_named_by_its_url() -> None:
    specs = hg.validate_endpoints({**endpoints_params({}), "url": "http://10.0.0.1:8000/r", "urls": None})
    assert list(specs) == ["http://10.0.0.1:8000/r"]


@pytest.mark.parametrize(
    ("urls", "expected"),
    [
        ({}, "urls must name at least one endpoint"),
        ({"app1_8000": "ftp://10.0.0.1/"}, "urls['app1_8000'] must be an http:// or https:// URL with a host"),
        ({"ok": "http://10.0.0.1/", "bad": "http:///no-host"}, "urls['bad'] must be an http://"),
    ],
)
def test_invalid_endpoints_are_named(urls: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        hg.validate_endpoints(endpoints_params(urls, successes=0))
    with pytest.raises(ValueError, match="successes must be at least 1"):
        hg.validate_endpoints(endpoints_params(urls, successes=0))


def test_the_endpoints_are_gated_at_the_same_time(start_server: StartServer) -> None:
    # Each endpoint is ready only once the other one has been asked: gated one after the other, the
    # first would time out before the second is ever asked.
    servers: dict[str, ScriptedServer] = {}
    servers["a"] = start_server(lambda n, t: Reply(200, READY) if servers["b"].requests else Reply(503, "waiting"))
    servers["b"] = start_server(lambda n, t: Reply(200, READY) if servers["a"].requests else Reply(503, "waiting"))
    specs, outcomes = run_endpoints(
        endpoints_params({name: server.url() for name, server in servers.items()}, expect_json=EXPECT_READY,
                         timeout=2.0)
    )
    assert {name: outcome.passed for name, outcome in outcomes.items()} == {"a": True, "b": True}
    assert hg.endpoints_message(specs, outcomes).startswith("all 2 endpoints passed 2 checks in a row; the slowest, ")


def test_one_endpoint_that_never_passes_fails_the_gate_and_is_named_with_what_it_saw(
    start_server: StartServer,
) -> None:
    ready = start_server(lambda n, t: Reply(200, READY))
    broken = start_server(lambda n, t: Reply(503, {"status": "not ready", "reason": "forced"}))
    specs, outcomes = run_endpoints(
        endpoints_params({"app1_8000": ready.url(), "app1_8001": broken.url()}, expect_json=EXPECT_READY,
                         timeout=0.5),
        fake_time=True,
    )
    fields = hg.endpoints_fields(specs, outcomes)
    assert fields["failed_endpoints"] == ["app1_8001"]
    assert fields["endpoints"]["app1_8000"]["passed"] is True
    assert fields["endpoints"]["app1_8001"]["passed"] is False
    assert fields["endpoints"]["app1_8001"]["status"] == 503
    assert fields["attempts"] == len(ready.requests) + len(broken.requests)
    message = hg.endpoints_message(specs, outcomes)
    assert message.startswith(f"1 of 2 endpoints did not pass: app1_8001: {broken.url()} did not pass 2 checks")
    assert '"reason": "forced"' in message
    assert "app1_8000" not in message


def test_the_ansible_command_gates_several_endpoints(start_server: StartServer, ansible_env: dict[str, str]) -> None:
    first = start_server(lambda n, t: Reply(200, READY) if n >= 2 else Reply(503, "starting"))
    second = start_server(lambda n, t: Reply(200, READY))
    completed, result = run_ansible(
        {"urls": {"first": first.url(), "second": second.url()}, "expect_json": EXPECT_READY, "interval": 0.05},
        ansible_env,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert result["failed_endpoints"] == []
    assert result["endpoints"]["first"]["attempts"] == 5 == len(first.requests)
    assert result["endpoints"]["second"]["attempts"] == 3 == len(second.requests)
    assert result["endpoints"]["second"]["json"] == READY
    assert result["attempts"] == 8
    assert result["status"] is None
    assert result["changed"] is False


def test_url_and_urls_together_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_main({"url": "http://127.0.0.1:8000/ready", "urls": {"a": "http://127.0.0.1:8001/ready"}}, capsys)
    assert result["failed"] is True
    assert "mutually exclusive: url|urls" in result["msg"]
    result = run_main({"successes": 2}, capsys)
    assert result["failed"] is True
    assert "one of the following is required: url, urls" in result["msg"]


def test_check_mode_with_urls_makes_one_request_each_and_does_not_fail(
    start_server: StartServer, capsys: pytest.CaptureFixture[str]
) -> None:
    ready = start_server(lambda n, t: Reply(200, READY))
    starting = start_server(lambda n, t: Reply(503, "starting"))
    result = run_main(
        {"urls": {"ready": ready.url(), "starting": starting.url()}, "timeout": 30, "_ansible_check_mode": True}, capsys
    )
    assert "failed" not in result
    assert result["passed"] is False
    assert result["failed_endpoints"] == ["starting"]
    assert result["msg"] == (
        "check mode: one check each, no waiting: ready: passed (HTTP 200, body "
        f"'{json.dumps(READY)}'); starting: status 503 is not one of [200] (HTTP 503, body 'starting')"
    )
    assert len(ready.requests) == 1 == len(starting.requests)
