#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: wait until an HTTP readiness check passes several times in a row."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: health_gate
short_description: Wait until an HTTP readiness check passes several times in a row
description:
  - Sends C(GET) requests to O(url) until O(successes) consecutive checks pass, or fails when
    O(timeout) runs out. A rolling deploy uses it to decide that a freshly started instance may
    take traffic.
  - A check passes when the response status is one of O(expect_status) and, if O(expect_json) is
    set, the body is a JSON object that contains O(expect_json).
  - One failed check resets the count, so an endpoint that flaps between ready and not ready
    never passes.
  - No check starts after O(timeout) and each request is abandoned after O(request_timeout),
    so a slow or stalled endpoint cannot make the module overrun O(timeout) by more than one
    O(request_timeout).
  - On timeout the failure message says what the last check saw (the status and an excerpt of
    the body, or the connection error) and, when the last check got no answer, the last HTTP
    response too.
  - With O(urls) instead of O(url), it gates several endpoints at once, such as every instance of a
    rolling deploy's batch. Each is checked on its own, all at the same time, with the same
    expectations, and the module passes only when every one of them passed. The time it takes is
    that of the slowest endpoint, not the sum.
  - The module only reads, so it never reports a change.
author:
  - rollgate maintainers
options:
  url:
    description:
      - The readiness endpoint, an C(http://) or C(https://) URL.
      - Exactly one of O(url) and O(urls) is required.
    type: str
  urls:
    description:
      - Several readiness endpoints to gate at once, as a mapping from a name (an instance's name,
        say) to its C(http://) or C(https://) URL. The messages and RV(endpoints) use the names.
      - Exactly one of O(url) and O(urls) is required.
    type: dict
  expect_status:
    description:
      - HTTP status codes that count as a pass.
    type: list
    elements: int
    default: [200]
  expect_json:
    description:
      - A mapping that must be a subset of the JSON object in the response body.
      - Nested mappings are matched the same way, key by key; any other value, lists included,
        must be equal.
      - Values are compared with their JSON types, so V(1) does not match V("1") and V(true) does
        not match V(1). Quote a version such as V("1.10") so that it stays a string.
    type: dict
  successes:
    description:
      - How many checks in a row must pass.
    type: int
    default: 3
  interval:
    description:
      - Seconds from the start of one check to the start of the next; must be greater than 0.
    type: float
    default: 1
  timeout:
    description:
      - Seconds, overall, before the module gives up and fails.
    type: float
    default: 120
  request_timeout:
    description:
      - Seconds one request may take, from connecting to reading the whole body.
    type: float
    default: 2
  validate_certs:
    description:
      - Whether to verify the server's TLS certificate for C(https://) URLs.
    type: bool
    default: true
  headers:
    description:
      - Extra HTTP request headers, such as C(Host) or C(Authorization).
      - The values show in the task's arguments at high verbosity; when one is a secret, set
        C(no_log) on the task.
    type: dict
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module sends a single request and reports whether it would pass,
        without waiting and without failing, because earlier tasks did not really restart
        anything and the endpoint is not expected to be ready yet. Invalid options still fail.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Redirects are followed. Proxies are taken from the environment (C(https_proxy), C(no_proxy)).
  - Only the first MiB of a body is read; a larger body does not parse as JSON.
seealso:
  - module: ansible.builtin.uri
  - module: ansible.builtin.wait_for
"""

EXAMPLES = r"""
- name: Wait until the new instance reports ready with the version just deployed
  health_gate:
    url: "http://{{ app_address | default(ansible_host) }}:{{ item }}/health/ready"
    expect_json:
      status: ready
      version: "{{ app_version }}"
    successes: 3
    interval: 1
    timeout: 90
  loop: "{{ app_instance_ports }}"
  delegate_to: localhost

- name: Accept 200 or 204 from an HTTPS endpoint with a self-signed certificate in the lab
  health_gate:
    url: https://lb.lab.internal/healthz
    expect_status: [200, 204]
    validate_certs: false
    headers:
      Host: app.lab.internal

- name: Gate every instance of a batch at once, each expecting the version just deployed
  health_gate:
    urls:
      app1_8000: http://10.88.0.11:8000/health/readiness
      app1_8001: http://10.88.0.11:8001/health/readiness
      app2_8000: http://10.88.0.12:8000/health/readiness
    expect_json:
      status: ready
      version: "{{ app_version }}"
    successes: 2
    timeout: 90

- name: Record how long the instance took to become ready
  health_gate:
    url: "http://127.0.0.1:8000/health/ready"
  register: gate

- name: Show it
  ansible.builtin.debug:
    msg: "ready after {{ gate.elapsed }}s and {{ gate.attempts }} checks"
"""

RETURN = r"""
elapsed:
  description: Seconds from the first check to the result; with O(urls), that of the slowest endpoint.
  returned: always
  type: float
  sample: 4.213
attempts:
  description: Number of checks made; with O(urls), over all endpoints.
  returned: always
  type: int
  sample: 5
status:
  description:
    - HTTP status of the last response; null when the last check got no response.
    - Null with O(urls); see RV(endpoints).
  returned: always
  type: int
  sample: 200
json:
  description:
    - The JSON body of the last response; null when it was not JSON or there was none.
    - Null with O(urls); see RV(endpoints).
  returned: always
  type: raw
  sample: {"status": "ready", "version": "1.4.2"}
endpoints:
  description: With O(urls), what each endpoint's gate saw, by name.
  returned: when O(urls) is set
  type: dict
  sample:
    app1_8000: {"passed": true, "elapsed": 3.1, "attempts": 4, "status": 200,
                "json": {"status": "ready", "version": "1.4.2"}, "msg": "passed 2 checks in a row"}
failed_endpoints:
  description: With O(urls), the names of the endpoints that did not pass, sorted.
  returned: when O(urls) is set
  type: list
  elements: str
  sample: ["app2_8000"]
passed:
  description:
    - Whether the gate passed. Always true on success; in check mode, whether the single check
      passed.
  returned: success
  type: bool
  sample: true
msg:
  description: What happened, in a sentence.
  returned: always
  type: str
  sample: "http://127.0.0.1:8000/health/ready passed 3 checks in a row after 5 attempts in 4.2s"
"""

import functools
import json
import math
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Mapping, Optional
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

MAX_BODY_BYTES = 1024 * 1024
BODY_EXCERPT_CHARS = 200
VALUE_EXCERPT_CHARS = 80

ARGUMENT_SPEC = dict(
    url=dict(type="str"),
    urls=dict(type="dict"),
    expect_status=dict(type="list", elements="int", default=[200]),
    expect_json=dict(type="dict"),
    successes=dict(type="int", default=3),
    interval=dict(type="float", default=1.0),
    timeout=dict(type="float", default=120.0),
    request_timeout=dict(type="float", default=2.0),
    validate_certs=dict(type="bool", default=True),
    headers=dict(type="dict"),
)


@dataclass(frozen=True)
class GateSpec:
    """Validated options: what a check asks for and how long the gate waits."""

    url: str
    expect_status: List[int]
    expect_json: Optional[Dict[str, Any]]
    successes: int
    interval: float
    timeout: float
    request_timeout: float
    validate_certs: bool
    headers: Dict[str, str]


@dataclass(frozen=True)
class CheckResult:
    """What one check saw. ``problem`` says why it did not pass; ``status`` is None without a response."""

    passed: bool
    status: Optional[int] = None
    body: str = ""
    json: Any = None
    problem: str = ""

    def describe(self) -> str:
        if self.status is None:
            return self.problem
        excerpt = body_excerpt(self.body)
        seen = f"HTTP {self.status}, body '{excerpt}'" if excerpt else f"HTTP {self.status}, empty body"
        if self.passed:
            return f"passed ({seen})"
        if self.problem:
            return f"{self.problem} ({seen})"
        return seen


@dataclass(frozen=True)
class GateOutcome:
    passed: bool
    attempts: int
    elapsed: float
    streak: int
    last: Optional[CheckResult] = None
    last_failure: Optional[CheckResult] = None
    last_response: Optional[CheckResult] = None


class RequestDeadlineError(Exception):
    """The request did not complete within its time budget."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_http_url(url: Any) -> bool:
    if not isinstance(url, str) or any(character.isspace() for character in url):
        return False
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _url_problem(name: str, url: Any) -> List[str]:
    return [] if _is_http_url(url) else [f"{name} must be an http:// or https:// URL with a host, got {url!r}"]


def validate_options(params: Mapping[str, Any]) -> GateSpec:
    """Return the options as a GateSpec, or raise ValueError listing every invalid one."""
    url = params["url"]
    problems = _url_problem("url", url) + _check_problems(params)
    if problems:
        raise ValueError("invalid options: " + "; ".join(problems))
    return _gate_spec(params, url)


def validate_endpoints(params: Mapping[str, Any]) -> Dict[str, GateSpec]:
    """Return one GateSpec per endpoint, by name (with ``url``, the URL is the name), or raise
    ValueError listing every invalid option."""
    urls = params.get("urls")
    if urls is None:
        spec = validate_options(params)
        return {spec.url: spec}
    problems = [] if urls else ["urls must name at least one endpoint"]
    for name, url in urls.items():
        problems += _url_problem(f"urls[{name!r}]", url)
    problems += _check_problems(params)
    if problems:
        raise ValueError("invalid options: " + "; ".join(problems))
    template = _gate_spec(params, "")
    return {str(name): replace(template, url=url) for name, url in urls.items()}


def _check_problems(params: Mapping[str, Any]) -> List[str]:
    """The problems with every option but the URLs."""
    problems = []
    expect_status = list(params.get("expect_status") or [])
    if not expect_status:
        problems.append("expect_status must list at least one HTTP status")
    for code in expect_status:
        if not isinstance(code, int) or not 100 <= code <= 599:
            problems.append(f"expect_status must hold HTTP statuses between 100 and 599, got {code!r}")
    successes = params.get("successes")
    if not isinstance(successes, int) or successes < 1:
        problems.append(f"successes must be at least 1, got {successes!r}")
    for name in ("interval", "timeout", "request_timeout"):
        value = params.get(name)
        if not (_is_number(value) and math.isfinite(value) and value > 0):
            problems.append(f"{name} must be a number of seconds greater than 0, got {value!r}")
    return problems


def _gate_spec(params: Mapping[str, Any], url: str) -> GateSpec:
    headers = params.get("headers") or {}
    return GateSpec(
        url=url,
        expect_status=list(params["expect_status"]),
        expect_json=params.get("expect_json"),
        successes=params["successes"],
        interval=float(params["interval"]),
        timeout=float(params["timeout"]),
        request_timeout=float(params["request_timeout"]),
        validate_certs=bool(params["validate_certs"]),
        headers={str(name): str(value) for name, value in headers.items()},
    )


def short_json(value: Any) -> str:
    """Render a value as JSON, so that types show (``"1.2"`` versus ``1.2``), cut to a line."""
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= VALUE_EXCERPT_CHARS else text[: VALUE_EXCERPT_CHARS - 3] + "..."


def body_excerpt(body: str) -> str:
    text = " ".join(body.split())
    return text if len(text) <= BODY_EXCERPT_CHARS else text[: BODY_EXCERPT_CHARS - 3] + "..."


def json_equal(expected: Any, actual: Any) -> bool:
    """Equality with JSON types: a boolean is not a number (``_is_number``), ``1`` equals ``1.0``."""
    if _is_number(expected) or _is_number(actual):
        return _is_number(expected) and _is_number(actual) and expected == actual
    if isinstance(expected, Mapping):
        return (
            isinstance(actual, Mapping)
            and set(map(str, expected)) == set(map(str, actual))
            and all(json_equal(value, actual[str(key)]) for key, value in expected.items())
        )
    if isinstance(expected, (list, tuple)):
        return (
            isinstance(actual, (list, tuple))
            and len(expected) == len(actual)
            and all(json_equal(want, got) for want, got in zip(expected, actual))
        )
    return expected == actual


def json_subset_mismatch(expected: Mapping[str, Any], actual: Any, path: str = "") -> Optional[str]:
    """Return why ``expected`` is not a subset of the JSON value ``actual``, or None if it is.

    Mappings are matched key by key, recursively; other values must be ``json_equal``.
    """
    if not isinstance(actual, Mapping):
        return f"{path or 'the body'} is {short_json(actual)}, expected a JSON object"
    for key, want in expected.items():
        where = f"{path}.{key}" if path else str(key)
        if str(key) not in actual:
            return f"{where} is missing, expected {short_json(want)}"
        got = actual[str(key)]
        if isinstance(want, Mapping):
            problem = json_subset_mismatch(want, got, where)
            if problem:
                return problem
        elif not json_equal(want, got):
            return f"{where} is {short_json(got)}, expected {short_json(want)}"
    return None


def judge_response(status: int, body: bytes, spec: GateSpec) -> CheckResult:
    """Decide whether one HTTP response passes."""
    text = body.decode("utf-8", errors="replace")
    try:
        document = json.loads(text) if len(body) <= MAX_BODY_BYTES else None
    except ValueError:
        document = None
    if status not in spec.expect_status:
        problem = f"status {status} is not one of {spec.expect_status}"
    elif spec.expect_json is not None and document is None:
        problem = f"body is not JSON, expected an object containing {short_json(spec.expect_json)}"
    elif spec.expect_json is not None:
        problem = json_subset_mismatch(spec.expect_json, document) or ""
    else:
        problem = ""
    return CheckResult(passed=not problem, status=status, body=text, json=document, problem=problem)


def describe_error(error: BaseException) -> str:
    reason = error.reason if isinstance(error, URLError) else error
    text = str(reason) or type(reason).__name__
    kind = type(reason).__name__
    return text if kind in text else f"{kind}: {text}"


def is_timeout(error: BaseException) -> bool:
    """Whether a failed request ran out of time (a socket timeout, bare or wrapped by urllib)."""
    reason = error.reason if isinstance(error, URLError) else error
    return isinstance(reason, TimeoutError)


def call_with_deadline(function: Callable[[], Any], seconds: float) -> Any:
    """Run ``function`` and return its result, or raise RequestDeadlineError after ``seconds``.

    Socket timeouts bound each read, not the whole response: a server that trickles bytes could
    keep a request alive indefinitely. Running it in a daemon thread bounds it for certain; an
    abandoned thread ends with its socket timeout or with the module process.
    """
    outcome = {}  # type: Dict[str, Any]
    finished = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = function()
        except Exception as error:  # handed to the caller below
            outcome["error"] = error
        finally:
            finished.set()

    threading.Thread(target=run, name="health_gate-request", daemon=True).start()
    if not finished.wait(seconds):
        raise RequestDeadlineError(f"no complete response within {seconds:.1f}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _read_body(response: Any) -> bytes:
    try:
        return response.read(MAX_BODY_BYTES + 1) or b""
    except Exception:
        # An error response may come without a readable body; its status still counts.
        return b""


def check_once(spec: GateSpec, opener: Callable[..., Any] = open_url) -> CheckResult:
    """Make one request, within ``spec.request_timeout``, never raising: any failure to get a
    response is a failed check."""
    request_timeout = spec.request_timeout

    def fetch() -> CheckResult:
        try:
            response = opener(
                spec.url,
                method="GET",
                headers=spec.headers,
                validate_certs=spec.validate_certs,
                timeout=request_timeout,
            )
        except HTTPError as error:  # a status >= 400 still carries a status and a body
            try:
                return judge_response(error.code, _read_body(error), spec)
            finally:
                error.close()
        try:
            return judge_response(response.getcode(), _read_body(response), spec)
        finally:
            response.close()

    try:
        return call_with_deadline(fetch, request_timeout)
    except RequestDeadlineError as error:
        return CheckResult(passed=False, problem=str(error))
    except Exception as error:  # a probe reports every failure; the loop decides what it means
        if is_timeout(error):  # the socket timeout equals the deadline: whichever fires first, one cause
            return CheckResult(passed=False, problem=f"no complete response within {request_timeout:.1f}s")
        return CheckResult(passed=False, problem=f"no response: {describe_error(error)}")


def wait_until_ready(
    spec: GateSpec,
    check: Callable[[], CheckResult],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> GateOutcome:
    """Check every ``spec.interval`` seconds until ``spec.successes`` checks in a row pass.

    No check starts at or after ``spec.timeout``, and ``check`` is expected to take at most
    ``spec.request_timeout`` (``check_once`` enforces it), so the loop ends at most one request
    timeout after the deadline. Every check gets its whole request timeout rather than the time
    left: a check squeezed into the last milliseconds would always fail, and its "no response"
    would hide what the endpoint really answered last.
    """
    started = clock()
    deadline = started + spec.timeout
    attempts = streak = 0
    last = last_failure = last_response = None
    while True:
        check_started = clock()
        attempts += 1
        last = check()
        if last.status is not None:
            last_response = last
        if last.passed:
            streak += 1
            if streak >= spec.successes:
                return GateOutcome(True, attempts, clock() - started, streak, last, last_failure, last_response)
        else:
            streak = 0
            last_failure = last
        next_check = check_started + spec.interval
        now = clock()
        if max(next_check, now) >= deadline:
            return GateOutcome(False, attempts, now - started, streak, last, last_failure, last_response)
        if next_check > now:
            sleep(next_check - now)


def check_only_once(check: Callable[[], CheckResult]) -> GateOutcome:
    """Check mode: one check, no waiting, as an outcome."""
    started = time.monotonic()
    result = check()
    return GateOutcome(result.passed, 1, time.monotonic() - started, int(result.passed), result)


def wait_until_all_ready(
    specs: Mapping[str, GateSpec], gate: Callable[[GateSpec], GateOutcome]
) -> Dict[str, GateOutcome]:
    """Run ``gate`` on every endpoint at the same time; return each outcome by name."""
    with ThreadPoolExecutor(max_workers=len(specs), thread_name_prefix="health_gate") as pool:
        futures = {name: pool.submit(gate, spec) for name, spec in specs.items()}
        return {name: future.result() for name, future in futures.items()}


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def failure_message(spec: GateSpec, outcome: GateOutcome) -> str:
    """Say what the gate expected and what it saw last."""
    last_seen = outcome.last.describe() if outcome.last else "none"
    message = (
        f"{spec.url} did not pass {_count(spec.successes, 'check')} in a row within the {spec.timeout:g}s "
        f"timeout ({_count(outcome.attempts, 'attempt')}). Last check: {last_seen}."
    )
    if outcome.last is not None and outcome.last.passed:
        message += f" Only the last {outcome.streak} passed in a row before time ran out"
        if outcome.last_failure is not None:
            message += f"; the failure before them: {outcome.last_failure.describe()}"
        message += "."
    elif outcome.last_response is not None and outcome.last_response is not outcome.last:
        message += f" Last HTTP response: {outcome.last_response.describe()}."
    return message


def success_message(spec: GateSpec, outcome: GateOutcome) -> str:
    return (
        f"{spec.url} passed {_count(spec.successes, 'check')} in a row after "
        f"{_count(outcome.attempts, 'attempt')} in {outcome.elapsed:.1f}s"
    )


def endpoints_message(specs: Mapping[str, GateSpec], outcomes: Mapping[str, GateOutcome]) -> str:
    """Say which endpoints did not pass and what each saw last, or how long the slowest took."""
    failed = sorted(name for name, outcome in outcomes.items() if not outcome.passed)
    if failed:
        return f"{len(failed)} of {_count(len(outcomes), 'endpoint')} did not pass: " + " ".join(
            f"{name}: {failure_message(specs[name], outcomes[name])}" for name in failed
        )
    slowest = max(outcomes, key=lambda name: outcomes[name].elapsed)
    successes = next(iter(specs.values())).successes
    return (
        f"all {_count(len(outcomes), 'endpoint')} passed {_count(successes, 'check')} in a row; "
        f"the slowest, {slowest}, in {outcomes[slowest].elapsed:.1f}s"
    )


def endpoints_fields(specs: Mapping[str, GateSpec], outcomes: Mapping[str, GateOutcome]) -> Dict[str, Any]:
    endpoints = {}
    for name, outcome in outcomes.items():
        endpoints[name] = dict(
            result_fields(outcome),
            passed=outcome.passed,
            msg=success_message(specs[name], outcome) if outcome.passed else failure_message(specs[name], outcome),
        )
        del endpoints[name]["changed"]
    return dict(
        changed=False,
        elapsed=max(field["elapsed"] for field in endpoints.values()),
        attempts=sum(field["attempts"] for field in endpoints.values()),
        status=None,
        json=None,
        endpoints=endpoints,
        failed_endpoints=sorted(name for name, outcome in outcomes.items() if not outcome.passed),
    )


def result_fields(outcome: GateOutcome) -> Dict[str, Any]:
    return dict(
        changed=False,
        elapsed=round(outcome.elapsed, 3),
        attempts=outcome.attempts,
        status=outcome.last.status if outcome.last else None,
        json=outcome.last.json if outcome.last else None,
    )


def run_module(module: AnsibleModule) -> None:
    if module.params.get("urls") is not None:
        run_endpoints(module)
        return
    try:
        spec = validate_options(module.params)
    except ValueError as error:
        module.fail_json(msg=f"health_gate: {error}", changed=False)

    check = functools.partial(check_once, spec)
    if module.check_mode:
        outcome = check_only_once(check)
        module.exit_json(
            passed=outcome.passed,
            msg=f"check mode: one check, no waiting: {outcome.last.describe()}",
            **result_fields(outcome),
        )

    outcome = wait_until_ready(spec, check)
    if not outcome.passed:
        module.fail_json(msg=failure_message(spec, outcome), **result_fields(outcome))
    module.exit_json(passed=True, msg=success_message(spec, outcome), **result_fields(outcome))


def run_endpoints(module: AnsibleModule) -> None:
    """The gate over ``urls``: every endpoint at once."""
    try:
        specs = validate_endpoints(module.params)
    except ValueError as error:
        module.fail_json(msg=f"health_gate: {error}", changed=False)

    def gate(spec: GateSpec) -> GateOutcome:
        check = functools.partial(check_once, spec)
        return check_only_once(check) if module.check_mode else wait_until_ready(spec, check)

    outcomes = wait_until_all_ready(specs, gate)
    fields = endpoints_fields(specs, outcomes)
    passed = not fields["failed_endpoints"]
    if module.check_mode:
        seen = "; ".join(f"{name}: {outcome.last.describe()}" for name, outcome in sorted(outcomes.items()) if outcome.last)
        module.exit_json(passed=passed, msg=f"check mode: one check each, no waiting: {seen}", **fields)
    if not passed:
        module.fail_json(msg=endpoints_message(specs, outcomes), **fields)
    module.exit_json(passed=True, msg=endpoints_message(specs, outcomes), **fields)


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("url", "urls")],
        required_one_of=[("url", "urls")],
        supports_check_mode=True,
    )
    try:
        run_module(module)
    except Exception as error:  # the promise is a message, never a traceback
        module.fail_json(
            msg=f"health_gate: unexpected {type(error).__name__}: {error}",
            exception=traceback.format_exc(),
            changed=False,
        )


if __name__ == "__main__":
    main()
