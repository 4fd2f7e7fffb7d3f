"""Negative controls of the zero-failed checks, per balancer: the same traffic and the same assertion that
test_upgrade.py's rolling deploys pass must fail against what a plain restart does.

test_upgrade.py shows no request failed during a rolling deploy. That means something only if the
traffic can see a failure where users would: a `GET /health/liveness` one at a time could not (every
balancer retries a failed GET, and HAProxy even hides a plain restart of every host, issue 31). So each
restart below leaves out what the rolling deploy does, and its tests assert that the traffic saw requests
fail. If one ever passes with no failure, the traffic has gone blind, and the suite says so:

- every instance restarted at once, as a plain `systemctl restart` does it, with a write held in flight
  past the app's DRAIN_TIMEOUT: the held write fails (no in-flight wait; test_upgrade.py's good deploy
  waits for a write held the same way, and it succeeds), and so do other requests (no batches, no drain);
- a restart into a config that fails readiness, host by host with no gate (the rolling deploy's gate
  stops at the first batch and rolls it back).

The two restarts share one fixture's traffic where they could, to keep the stack's time: about 30 s per
balancer. Each control's figures (requests per class, failed) go to .cache/zero-failed-controls.jsonl
(testlib.record_traffic), as the deploys' do, for the notes. Afterwards the fleet is as before: every instance ready and served by the balancer.
"""

import os
import threading
import time

import pytest

from testlib import (HeldWrite, UserTraffic, app_drain_timeout, container, host_name, record_traffic,
                     wait_until_served)

APP_HOSTS = [host_name("app1"), host_name("app2")]
DB_HOST = host_name("db1")
PORTS = (8000, 8001)
UNITS = " ".join(f"inventory@{port}.service" for port in PORTS)
DRAIN_TIMEOUT = app_drain_timeout()
# A runtime drop-in: one more environment file, read after the unit's own two, so its value wins.
FAIL_READINESS_DROP_IN = "/run/systemd/system/inventory@.service.d/zz-fail-readiness.conf"
FAIL_READINESS_ENV = "/run/rollgate-fail-readiness.env"

testinfra_hosts = [host_name("lb1")]


def restart_everywhere_at_once() -> None:
    threads = [threading.Thread(target=container(app).check_output, args=(f"systemctl restart {UNITS}",))
               for app in APP_HOSTS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)


@pytest.fixture(scope="module")
def plain_restart(balancer):
    """Every instance restarted at once, under traffic, while a write is held in flight: the app gives
    the held write DRAIN_TIMEOUT seconds, then ends it; nothing drains the instances first."""
    with HeldWrite(APP_HOSTS, DB_HOST) as held, UserTraffic() as traffic:
        time.sleep(1)
        restart_everywhere_at_once()
        held.wait(DRAIN_TIMEOUT + 30)
        time.sleep(1)
    wait_until_served(APP_HOSTS, PORTS)
    record_traffic("every instance restarted at once, a write held in flight", balancer.kind, traffic,
           held={"instance": held.instance, "status": held.status, "error": held.error})
    return held, traffic


def test_a_restart_with_no_in_flight_wait_fails_the_held_write(plain_restart):
    held, _ = plain_restart
    assert held.finished_at is not None, "the held write never ended"
    assert not held.succeeded, (f"the write held on {held.instance} succeeded through a plain restart "
                                f"(HTTP {held.status}): the held write cannot tell a drain from no drain")


def test_restarting_every_instance_at_once_fails_requests(plain_restart):
    _, traffic = plain_restart
    assert traffic.failed(), f"no request failed through a restart of every instance at once: {traffic.figures()}"


@pytest.fixture(scope="module")
def unready_restart(balancer):
    """A config whose readiness fails (APP_FAIL_READINESS in a runtime drop-in), restarted into host by host
    with no gate, under traffic; then the drop-in goes and the fleet is restarted back. One host is not
    enough: HAProxy takes an unready batch out by its checks and retries elsewhere (0 of 68 failed on the
    lab); what no balancer survives is the rolling restart going on to the next batch, as nothing stops it."""
    add = (f"mkdir -p {os.path.dirname(FAIL_READINESS_DROP_IN)} && echo APP_FAIL_READINESS=true > {FAIL_READINESS_ENV}"
           f" && printf '[Service]\\nEnvironmentFile={FAIL_READINESS_ENV}\\n' > {FAIL_READINESS_DROP_IN}"
           f" && systemctl daemon-reload && systemctl restart {UNITS}")
    remove = f"rm -f {FAIL_READINESS_DROP_IN} {FAIL_READINESS_ENV} && systemctl daemon-reload && systemctl restart {UNITS}"
    try:
        with UserTraffic() as traffic:
            time.sleep(1)
            for app_host in APP_HOSTS:
                container(app_host).check_output(add)
            time.sleep(4)
    finally:
        for app_host in APP_HOSTS:
            container(app_host).run(remove)
    wait_until_served(APP_HOSTS, PORTS)
    record_traffic("restart into a config that fails readiness, no gate", balancer.kind, traffic)
    return traffic


def test_a_restart_into_an_unready_config_with_no_gate_fails_requests(unready_restart):
    figures = unready_restart.figures()
    assert unready_restart.failed(), f"no request failed through a restart into an unready config: {figures}"
