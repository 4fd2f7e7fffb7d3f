# -*- coding: utf-8 -*-
"""Filters that plan a rolling deploy and report on it.

- ``rollout_batches``: split the app hosts into batches of ``rollout_batch_size`` and refuse, before
  anything changes, a plan that would take out more than ``rollout_max_unavailable`` instances or
  leave fewer than ``rollout_min_healthy`` ready ones.
- ``scaled_backends``: the backends with some weights cut to a percentage (the slow start's steps).
- ``slow_start_ramp``: the slow start's steps that change a returning batch's weights, with their pauses.
- ``rollout_report``: the summary table printed at the end of a rollout.
- ``rollout_batch_check``: a batch about to be drained against the limits, as the fleet is now.
- ``restart_batches``: the batches of a converge's restart, each cut to its instances that changed.
- ``rollout_settings_check``: every numeric rollout setting against its range (``ROLLOUT_NUMBERS``, the one
  table of them) and the in-flight path, all the bad ones named in one message, before any host is contacted.
- ``in_flight_unread_by_host`` and ``in_flight_unread_running``: after the in-flight wait, which
  instances whose count could not be read are still running by systemd (the wait fails on those).
- ``apache_members_out_of_service`` and ``apache_runtime_plan``: read Apache's balancer-manager, to
  wait for returning members and to drain or return members at runtime rather than by a reload.
"""

from __future__ import annotations

import functools
import math
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError


class RolloutError(ValueError):
    """A rollout setting or plan that cannot be carried out; the message names the setting and the fix."""


_PERCENT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*$")


def _count_or_percent(name: str, value: Any, total: int, example: str) -> int:
    """Read ``value`` as a whole number >= 1 or a percentage of ``total`` (rounded up, at least 1)."""
    if isinstance(value, bool):
        raise RolloutError(f"{name} must be a whole number or a percentage such as {example}, got {value!r}")
    if isinstance(value, str):
        match = _PERCENT.match(value)
        if match:
            percent = float(match.group(1))
            if not 0 < percent <= 100:
                raise RolloutError(f"{name} {value!r} must be a percentage above 0% and at most 100%")
            return max(1, math.ceil(total * percent / 100))
        if value.strip().isdigit():
            value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or value < 1:
        raise RolloutError(f"{name} must be a whole number >= 1 or a percentage such as {example}, got {value!r}")
    return value


def batch_host_count(batch_size: Any, host_count: int) -> int:
    """Hosts per batch: ``rollout_batch_size`` as a number of hosts, or a percentage of ``host_count``."""
    return min(_count_or_percent("rollout_batch_size", batch_size, host_count, "'25%'"), max(host_count, 1))


def _hosts_in_order(backends: Sequence[Mapping[str, Any]]) -> list[str]:
    hosts: list[str] = []
    for backend in backends:
        if backend["host"] not in hosts:
            hosts.append(backend["host"])
    return hosts


def max_unavailable_instances(max_unavailable: Any, backends: Sequence[Mapping[str, Any]]) -> int:
    """``rollout_max_unavailable`` as a number of instances; unset means one host's instances (the most
    any host has), a percentage is of all instances."""
    if max_unavailable is None or max_unavailable == "":
        per_host: dict[str, int] = {}
        for backend in backends:
            per_host[backend["host"]] = per_host.get(backend["host"], 0) + 1
        return max(per_host.values())
    return _count_or_percent("rollout_max_unavailable", max_unavailable, len(backends), "'50%'")


def _checked_backends(backends: Any) -> list[Mapping[str, Any]]:
    if isinstance(backends, (str, bytes, Mapping)) or not isinstance(backends, Iterable):
        raise RolloutError(f"expected the list from app_backends, got {backends!r}")
    checked = list(backends)
    if not checked:
        raise RolloutError("the app group has no instance to roll out: add hosts under [app] in the inventory")
    for backend in checked:
        if not isinstance(backend, Mapping) or not {"name", "host"} <= set(backend):
            raise RolloutError(f"expected backends with a name and a host, got {backend!r}")
    return checked


def _checked_min_healthy(min_healthy: Any) -> int:
    if isinstance(min_healthy, str) and min_healthy.strip().isdigit():
        return int(min_healthy)
    if isinstance(min_healthy, bool) or not isinstance(min_healthy, int) or min_healthy < 0:
        raise RolloutError(f"rollout_min_healthy must be a whole number >= 0, got {min_healthy!r}")
    return min_healthy


def _checked_unready(not_ready: Iterable[str] | None, names: Sequence[str]) -> set[str]:
    unready = set(not_ready or [])
    unknown = sorted(unready - set(names))
    if unknown:
        raise RolloutError(f"not_ready names unknown instances: {', '.join(unknown)}")
    return unready


def _check_batch(number: int, batch_hosts: Sequence[str], batch_names: set[str], instance_count: int,
                 unready: set[str], limit: int, min_healthy: int) -> None:
    """Refuse a batch that would make more than ``limit`` instances unavailable or leave fewer than
    ``min_healthy`` ready ones, counting the unready instances outside it as unavailable already."""
    unready_elsewhere = sorted(unready - batch_names)
    unavailable = len(batch_names) + len(unready_elsewhere)
    ready_left = instance_count - unavailable
    why_degraded = f" ({', '.join(unready_elsewhere)} not ready now)" if unready_elsewhere else ""
    bring_back = ", or bring the unready instances back first" if unready_elsewhere else ""
    if unavailable > limit:
        raise RolloutError(
            f"batch {number} ({', '.join(batch_hosts)}) would take out {len(batch_names)} instance(s)"
            f"{why_degraded}, so {unavailable} would be unavailable, more than rollout_max_unavailable "
            f"allows ({limit}): lower rollout_batch_size, raise rollout_max_unavailable{bring_back}"
        )
    if ready_left < min_healthy:
        raise RolloutError(
            f"batch {number} ({', '.join(batch_hosts)}) would leave {ready_left} ready instance(s)"
            f"{why_degraded}, fewer than rollout_min_healthy ({min_healthy}): lower rollout_batch_size"
            f"{bring_back or ', or add app hosts'}"
        )


def rollout_batches(
    backends: Any,
    batch_size: Any = 1,
    max_unavailable: Any = None,
    min_healthy: Any = 1,
    not_ready: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Split the hosts of ``backends`` (from ``app_backends``) into batches, in inventory order.

    Each batch is ``{"number", "hosts", "backends"}`` (backends: the batch's instances, as given).
    ``not_ready`` names the instances that are not ready now: they count as unavailable already, so
    a batch is refused when its instances plus the unready ones outside it exceed ``max_unavailable``,
    or when the ready instances left outside it would be fewer than ``min_healthy``. The first batch
    refused fails the whole plan, before any host changes.
    """
    checked = _checked_backends(backends)
    min_healthy = _checked_min_healthy(min_healthy)
    names = [backend["name"] for backend in checked]
    unready = _checked_unready(not_ready, names)
    hosts = _hosts_in_order(checked)
    per_batch = batch_host_count(batch_size, len(hosts))
    limit = max_unavailable_instances(max_unavailable, checked)
    batches: list[dict[str, Any]] = []
    for start in range(0, len(hosts), per_batch):
        batch_hosts = hosts[start:start + per_batch]
        batch_backends = [dict(backend) for backend in checked if backend["host"] in batch_hosts]
        number = len(batches) + 1
        _check_batch(number, batch_hosts, {b["name"] for b in batch_backends}, len(names), unready, limit, min_healthy)
        batches.append({"number": number, "hosts": batch_hosts, "backends": batch_backends})
    return batches


def restart_batches(batches: Any, stale_ports: Any) -> list[dict[str, Any]]:
    """The batches of a plan (``rollout_batches``) cut down to what a restart must touch: on each host,
    only the instances on ``stale_ports[host]`` (the ports whose release or config changed), and only
    the hosts that have one; renumbered from 1, in plan order. The plan's capacity checks ran on the
    whole batches, so the smaller ones keep within them. No stale port gives no batch.
    """
    if not isinstance(stale_ports, Mapping):
        raise RolloutError(f"the stale ports must map each host to its ports, got {stale_ports!r}")
    restart: list[dict[str, Any]] = []
    for batch in batches:
        backends = [dict(backend) for backend in batch["backends"]
                    if backend["port"] in (stale_ports.get(backend["host"]) or [])]
        if backends:
            hosts = [host for host in batch["hosts"] if any(backend["host"] == host for backend in backends)]
            restart.append({"number": len(restart) + 1, "hosts": hosts, "backends": backends})
    return restart


def rollout_batch_check(
    batch: Mapping[str, Any], backends: Any, max_unavailable: Any = None, min_healthy: Any = 1,
    not_ready: Iterable[str] | None = None,
) -> Mapping[str, Any]:
    """Check one planned batch again against the readiness seen now (right before it is drained);
    return it unchanged, or raise the same error the plan would."""
    checked = _checked_backends(backends)
    names = [backend["name"] for backend in checked]
    _check_batch(batch["number"], batch["hosts"], {b["name"] for b in batch["backends"]}, len(names),
                 _checked_unready(not_ready, names), max_unavailable_instances(max_unavailable, checked),
                 _checked_min_healthy(min_healthy))
    return batch


def scaled_backends(backends: Any, percent: Any, names: Iterable[str]) -> list[dict[str, Any]]:
    """Copies of ``backends`` (with weights) where the ones in ``names`` weigh ``percent`` of their
    weight, rounded up and at least 1 (0 stays 0): one step of a slow start."""
    checked = _checked_backends(backends)
    if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 < percent <= 100:
        raise RolloutError(f"a slow-start step must be a percentage above 0 and at most 100, got {percent!r}")
    selected = set(names)
    scaled = []
    for backend in checked:
        copy = dict(backend)
        if backend["name"] in selected and backend.get("weight", 0) > 0:
            copy["weight"] = _scaled_weight(backend["weight"], percent)
        scaled.append(copy)
    return scaled


def _scaled_weight(weight: int, percent: float) -> int:
    """``percent`` of ``weight``, rounded up and at least 1; 0 stays 0."""
    return max(1, math.ceil(weight * percent / 100)) if weight > 0 else 0


def slow_start_ramp(backends: Any, percents: Any, seconds: Any) -> list[dict[str, Any]]:
    """The steps of a returning batch's slow start (``backends``, with weights) that change what the
    balancer serves: each ``{"percent", "seconds"}``, the seconds being the pause before it.

    ``percents`` are ``slow_start_steps``, one pause of ``seconds / len(percents)`` (rounded up) apart. A
    step at which every backend of the batch weighs what it weighed at the step before changes nothing:
    it is left out, and its pause is added to the next step that changes a weight. The steps after the
    last change are dropped with their pauses, since the batch already weighs all of its weight: a
    backend of weight 1 has no ramp at all, one of weight 3 has three steps, not four."""
    checked = _checked_backends(backends)
    if not isinstance(percents, list) or not percents:
        raise RolloutError(f"the slow start needs its steps (slow_start_steps), got {percents!r}")
    pause = math.ceil(_number("rollout_slow_start", seconds, whole=False, minimum=0, example="30") / len(percents))
    ramp = []
    previous = None
    waited = 0
    for percent in percents:
        weights = [_scaled_weight(backend.get("weight", 0), percent) for backend in checked]
        if previous is None or weights != previous:
            ramp.append({"percent": percent, "seconds": waited})
            waited = 0
        previous = weights
        waited += pause
    return ramp


def _number(name: str, value: Any, whole: bool, minimum: float, example: str) -> Any:
    """``value`` as a number (numeric strings too: extra vars arrive as strings), at least ``minimum``."""
    number: Any = value
    if isinstance(value, str):
        try:
            number = int(value) if whole else float(value)
        except ValueError:
            number = None
    if isinstance(number, float) and whole and number.is_integer():
        number = int(number)
    valid_type = (int,) if whole else (int, float)
    if isinstance(number, bool) or not isinstance(number, valid_type) or number < minimum or number != number:
        kind = "a whole number" if whole else "a number"
        raise RolloutError(f"{name} must be {kind} >= {minimum:g} (such as {example}), got {value!r}")
    return number


# The rollout's numeric settings: (whole number, minimum, example). The one table of their ranges: the
# validate entry point checks them all before any host is contacted, and the filters that read one
# check it here too.
ROLLOUT_NUMBERS: dict[str, tuple[bool, float, str]] = {
    "rollout_min_healthy": (True, 0, "1"),
    "rollout_slow_start": (False, 0, "30"),
    "rollout_slow_start_steps": (True, 1, "4"),
    "rollout_drain_timeout": (True, 0, "60"),
    "rollout_gate_successes": (True, 1, "2"),
    "rollout_gate_timeout": (True, 1, "90"),
    "rollout_balancer_timeout": (True, 1, "60"),
}


def _setting(name: str, value: Any) -> Any:
    whole, minimum, example = ROLLOUT_NUMBERS[name]
    return _number(name, value, whole, minimum, example)


def rollout_settings_check(settings: Any) -> dict[str, Any]:
    """The numeric settings of ``settings`` (those ROLLOUT_NUMBERS knows) as numbers, and
    rollout_in_flight_path; every one out of its range is named in one error, with its range."""
    if not isinstance(settings, Mapping):
        raise RolloutError(f"rollout_settings_check expects a mapping of rollout settings, got {settings!r}")
    errors, checked = [], {}
    for name in ROLLOUT_NUMBERS:
        if name in settings:
            try:
                checked[name] = _setting(name, settings[name])
            except RolloutError as error:
                errors.append(str(error))
    path = settings.get("rollout_in_flight_path")
    if path is not None and (not isinstance(path, str) or not path.startswith("/") or any(c.isspace() for c in path)):
        errors.append(f"rollout_in_flight_path must be the path of each instance's metrics, starting with / "
                      f"(such as /health/metrics), got {path!r}")
    if errors:
        raise RolloutError("; ".join(errors))
    return checked


def slow_start_steps(seconds: Any, steps: Any) -> list[int]:
    """The weight percentages a returning batch goes through: ``steps`` equal steps up to 100, or just
    [100] when the slow start is off (0 seconds)."""
    seconds = _setting("rollout_slow_start", seconds)
    steps = _setting("rollout_slow_start_steps", steps)
    if seconds == 0:
        return [100]
    return [math.ceil(100 * step / steps) for step in range(1, steps + 1)]


def apache_members_out_of_service(backends: Any, members: Any) -> list[str]:
    """Names of ``backends`` that Apache's balancer-manager (the ``members`` that
    community.general.apache2_mod_proxy returns) does not show in service: no member at that
    address and port, or one that is drained, disabled, or whose Status lacks ``Ok``."""
    checked = _checked_backends(backends)
    in_service = set()
    for member in members or []:
        status = member.get("status") or {}
        if status.get("drained") or status.get("disabled"):
            continue
        if "Ok" not in str((member.get("attributes") or {}).get("Status") or ""):
            continue
        in_service.add((str(member.get("host")), str(member.get("port"))))
    return [backend["name"] for backend in checked
            if (str(backend.get("address")), str(backend.get("port"))) not in in_service]


def apache_runtime_plan(backends: Any, members: Any) -> dict[str, Any]:
    """How to bring Apache's running balancer to ``backends`` (with weights and drain states): member by
    member through balancer-manager at runtime, with no graceful restart, or by a reload.

    Returns ``{"reload_because": "", "changes": [...]}`` when the running members are the wanted ones:
    one change per member whose load factor or drain state differs, as the form balancer-manager takes
    (``{"name", "url", "form": {"b", "w", "nonce", "w_lf", "w_status_N", "w_status_D"}}``, posted to
    ``url``). A graceful restart closes the clients' idle kept-alive connections, and a request sent on
    one as it closes fails; none happens here. ``reload_because`` says why a reload is needed instead: a
    member added or gone, or a member without the balancer-manager link to set it by."""
    checked = _checked_backends(backends)
    running = {}
    for member in members or []:
        status = member.get("status") or {}
        factor = (member.get("attributes") or {}).get("Factor")
        try:
            factor = float(str(factor).strip())
        except ValueError:
            factor = None
        running[(str(member.get("host")), str(member.get("port")))] = {
            "factor": factor,
            "drained": bool(status.get("drained")),
            "disabled": bool(status.get("disabled")),
            "url": str(member.get("management_url") or ""),
        }

    def reload(because: str) -> dict[str, Any]:
        return {"reload_because": because, "changes": []}

    wanted = {(str(backend.get("address")), str(backend.get("port"))): backend for backend in checked}
    if set(wanted) != set(running):
        added = sorted(backend["name"] for key, backend in wanted.items() if key not in running)
        gone = sorted(f"{host}:{port}" for host, port in set(running) - set(wanted))
        return reload(f"members differ (not running: {', '.join(added) or 'none'}; "
                      f"running but not wanted: {', '.join(gone) or 'none'})")
    changes = []
    for key, backend in sorted(wanted.items(), key=lambda item: item[1]["name"]):
        # Apache's smallest load factor is 1: a weight of 0 (no capacity) is drained at 1.
        weight = max(int(backend.get("weight", 1)), 1)
        drained = bool(backend.get("drained"))
        now = running[key]
        if now["factor"] == float(weight) and now["drained"] == drained and not now["disabled"]:
            continue
        url, _, query = now["url"].partition("?")
        link = dict(urllib.parse.parse_qsl(query))
        if not url or not all(link.get(field) for field in ("b", "w", "nonce")):
            return reload(f"balancer-manager gave no link with b, w and nonce for {backend['name']}")
        changes.append({"name": backend["name"], "url": url, "form": {
            "b": link["b"], "w": link["w"], "nonce": link["nonce"], "w_lf": str(weight),
            "w_status_N": "1" if drained else "0", "w_status_D": "0"}})
    return {"reload_because": "", "changes": changes}


def rollout_report(
    before: Mapping[str, Mapping[str, Any]],
    after: Mapping[str, Mapping[str, Any]],
    batches: Sequence[Mapping[str, Any]],
) -> list[str]:
    """Lines of the end-of-rollout summary: each instance's version before and after and whether it is
    ready, then each batch's outcome and seconds, then the total."""
    lines = [f"{'instance':<28} {'before':<14} {'after':<14} ready"]
    for name in sorted(set(before) | set(after)):
        old = before.get(name, {})
        new = after.get(name, {})
        lines.append(
            f"{name:<28} {str(old.get('version') or '?'):<14} {str(new.get('version') or '?'):<14} "
            f"{'yes' if new.get('ready') else 'NO (' + str(new.get('reason') or 'no answer') + ')'}"
        )
    total = 0.0
    for batch in batches:
        seconds = float(batch.get("seconds", 0))
        total += seconds
        lines.append(
            f"batch {batch['number']} ({', '.join(batch['hosts'])}): {batch['outcome']} in {seconds:.1f} s"
        )
    lines.append(f"total: {total:.1f} s over {len(batches)} batch(es)")
    return lines


# systemd's `is-active` states of an instance that serves nothing: its requests are over.
IDLE_UNIT_STATES = ("inactive", "failed")


def in_flight_unread_by_host(unreadable: Mapping[str, str], backends: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The instances of ``backends`` named in ``unreadable``, grouped by host in backend order:
    [{"host": HOST, "names": [NAME, ...], "ports": [PORT, ...]}], one systemd question per host."""
    groups: dict[str, dict[str, Any]] = {}
    for backend in backends:
        if backend["name"] in unreadable:
            group = groups.setdefault(backend["host"], {"host": backend["host"], "names": [], "ports": []})
            group["names"].append(backend["name"])
            group["ports"].append(backend["port"])
    return list(groups.values())


def in_flight_unread_running(unreadable: Mapping[str, str], answers: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per unreadable instance that systemd does not report stopped or failed, naming it, its
    state and what the wait got from it. ``answers`` are the registered results of `systemctl
    is-active` run per group of ``in_flight_unread_by_host`` (item and stdout_lines, one state per
    unit in order); an instance with no state (systemctl itself failed) counts as running."""
    lines = []
    for answer in answers:
        states = list(answer.get("stdout_lines") or [])
        for position, name in enumerate(answer["item"]["names"]):
            state = states[position].strip() if position < len(states) else "unknown"
            if state not in IDLE_UNIT_STATES:
                lines.append(f"{name} (systemd: {state}): {unreadable.get(name, 'unreadable')}")
    return lines


def _as_filter(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def filter_function(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except RolloutError as error:
            raise AnsibleFilterError(str(error)) from error

    return filter_function


class FilterModule:
    """Rolling-deploy planning filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            name: _as_filter(function)
            for name, function in (
                ("rollout_batches", rollout_batches),
                ("rollout_batch_check", rollout_batch_check),
                ("restart_batches", restart_batches),
                ("scaled_backends", scaled_backends),
                ("slow_start_steps", slow_start_steps),
                ("slow_start_ramp", slow_start_ramp),
                ("rollout_report", rollout_report),
                ("rollout_settings_check", rollout_settings_check),
                ("in_flight_unread_by_host", in_flight_unread_by_host),
                ("in_flight_unread_running", in_flight_unread_running),
                ("apache_members_out_of_service", apache_members_out_of_service),
                ("apache_runtime_plan", apache_runtime_plan),
            )
        }
