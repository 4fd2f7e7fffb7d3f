"""The balancer pair behind its floating address (lb_vip: keepalived, VRRPv3, unicast between the lb hosts).

One lb host holds the address and it serves the app; keepalived's config passes its checker; VRRP is let in
from the peers only. Under traffic sent to the floating address itself (a port published on 127.0.0.1 is
bound to one container and cannot follow it), the holder dies (its container killed): the address moves
within 3 s, and no request sent after the move fails. The old holder, back, does not take it back. A rogue VRRP
speaker on an app host, with the highest priority, does not make the holder give the address up; the same
rogue against a holder without the peer filters does (the negative control, kept in the suite). A restart of
both balancers (playbooks/balancer_restart.yml: the standby first, the holder after handing the address over)
under traffic to the address fails no request. The rolling deploy through the pair is each balancer's good deploy
(test_upgrade.py): with a pair, its traffic goes to the floating address and every balancer's drains are seen.

Skipped when the inventory has one lb host (lb_vip empty).
"""

from __future__ import annotations

import http.client
import re
import subprocess
import time

import pytest

from testlib import (BALANCER_UNITS, KEEPALIVED_CONFIG, UserTraffic, active_kind, changed_counts, container,
                     host_address, host_name, keepalived_settings, lb_hosts, loadgen, record_traffic,
                     run_playbook, vip_client)


# Module scope: it must come before the module's other fixtures, which read the pair.
@pytest.fixture(scope="module", autouse=True)
def a_pair():
    if len(lb_hosts()) < 2:
        pytest.skip("one lb host: no pair, no floating address")

# The failover and the balancers' restart run once, in the last balancer's part (Apache's in the stack: its
# deploys are the shortest, and no deploy that fails on purpose runs there); on the lab, with the balancer it runs.
ONCE = pytest.mark.once_with_balancer(2)

VRRP_TABLE = "rollgate_vrrp"
FAILOVER_GOAL = 3.0
# Seconds the failover's client resends a request that got no answer (loadgen's retry_failed): above the goal.
RETRY_FAILED = 10.0
ROGUE_CONFIG = """global_defs {{
    router_id rogue
    vrrp_version 3
}}
vrrp_instance rogue {{
    state MASTER
    interface eth0
    virtual_router_id {router_id}
    priority 254
    advert_int 0.5
    unicast_src_ip {own}
    unicast_peer {{
{peers}
    }}
    virtual_ipaddress {{
        {vip}/{prefix} dev eth0
    }}
}}
"""




def holders_among(vip: str, hosts: list[str]) -> list[str]:
    """Those of `hosts` that have the floating address on an interface now."""
    return VIP.holders(vip, hosts, lambda host, command: container(host).run(command).stdout)


def holders(vip: str) -> list[str]:
    """The lb hosts that have the floating address on an interface now."""
    return holders_among(vip, lb_hosts())


def wait_for_one_holder(vip: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = holders(vip)
        if len(found) == 1:
            return found[0]
        time.sleep(0.5)
    pytest.fail(f"no single holder of {vip} within {timeout} s: {holders(vip)}")


# The client's view of the floating address (scripts/bench/vip.py, shared with the fault suite).
VIP = vip_client()
balancer_said = VIP.balancer_said


@pytest.fixture(scope="module")
def settings():
    return keepalived_settings()


def test_exactly_one_lb_host_holds_the_floating_address(settings):
    assert len(holders(settings["vip"])) == 1, holders(settings["vip"])


def test_the_floating_address_serves_the_app_through_its_holder(settings):
    holder = wait_for_one_holder(settings["vip"])
    status, balancer = balancer_said(settings["vip"], timeout=5)
    assert (status, balancer) == (200, holder)
    connection = http.client.HTTPConnection(settings["vip"], 80, timeout=10)
    connection.request("GET", "/health/liveness")
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("X-Instance"), (response.status, response.read()[:200])


def test_make_status_shows_each_balancers_view_and_which_one_holds_the_address(settings):
    holder = wait_for_one_holder(settings["vip"])
    result = run_playbook("playbooks/status.yml", {})
    assert result.returncode == 0, result.stdout[-3000:]
    said = dict(re.findall(r"balancer (\S+) \(\w+\): (holds|standby for) the floating address", result.stdout))
    assert said == {lb: "holds" if lb == holder else "standby for" for lb in lb_hosts()}, result.stdout[-3000:]


def test_a_vip_outside_the_lb_hosts_network_stops_site_before_any_host_changes(settings):
    """Checked once the hosts answer (lb entry point vip_check, from check_reachable.yml): the controller alone
    cannot know the hosts' networks."""
    network = ".".join(settings["vip"].split(".")[:2])
    outside = f"{network}.{(int(settings['vip'].split('.')[2]) + 1) % 256}.250"
    result = run_playbook("site.yml", {"lb_vip": outside})
    said = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert f"lb_vip {outside} is outside" in said and "choose a free address of that network" in said, said[-3000:]
    assert set(changed_counts(result.stdout).values()) == {0}, changed_counts(result.stdout)


def test_the_balancer_alone_on_one_lb_host_reads_its_peer_and_changes_nothing():
    """playbooks/balancer.yml --limit lb1: lb2 is left out, yet it is lb1's peer; its addresses are read from it
    for the VIP's check and for keepalived's config, and nothing changes."""
    result = run_playbook("playbooks/balancer.yml", {}, extra_args=["--limit", lb_hosts()[0]])
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert changed_counts(result.stdout) == {lb_hosts()[0]: 0}, result.stdout[-3000:]


def test_keepalived_config_passes_its_checker_on_every_lb_host():
    for lb in lb_hosts():
        result = container(lb).run(f"keepalived -t -f {KEEPALIVED_CONFIG}")
        assert result.rc == 0, (lb, result.stdout, result.stderr)


def test_vrrp_is_let_in_from_the_peers_only():
    addresses = {lb: host_address(lb) for lb in lb_hosts()}
    for lb in lb_hosts():
        rules = container(lb).check_output(f"nft list table inet {VRRP_TABLE}")
        peers = {address for name, address in addresses.items() if name != lb}
        accepted = re.search(r"ip saddr \{?([^}]*?)\}? meta l4proto (?:vrrp|112) accept", rules)
        assert accepted and {part.strip() for part in accepted[1].split(",")} == peers, rules
        assert re.search(r"meta l4proto (?:vrrp|112) counter packets \d+ bytes \d+ drop", rules), rules


def wait_until_running(host: str, timeout: float = 120) -> None:
    """Until systemd inside the host says it is up (running or degraded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = subprocess.run(["podman", "exec", host, "systemctl", "is-system-running"], capture_output=True,
                               text=True, check=False).stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(1)
    pytest.fail(f"{host} did not come up within {timeout} s after its start")


def forget_ssh_masters(address: str) -> None:
    """Over SSH (the stack), ansible keeps a master connection per host for 60 s (ControlPersist). One to a host
    that died holds a connection the host's new kernel will reset: the next ansible run through it would
    find the host unreachable. End them, as an operator's next `ssh` would after a reboot."""
    subprocess.run(["pkill", "-f", rf"ssh .*ControlPersist.* {re.escape(address)}( |$)"], check=False)


@pytest.fixture(scope="module")
def failover(settings):
    """Under traffic to the floating address (its own lab address, https), the holder dies: its container
    killed (SIGKILL to all of it, as a power cut; no goodbye advert). The other lb host notices the missing
    adverts (three of 0.5 s) and takes the address. Then the dead host is started again. The client retries a
    request that got no answer for up to RETRY_FAILED s (every request it sends is idempotent: reads, and writes
    with an Idempotency-Key); each record keeps its first failure, what a client that does not retry saw."""
    vip = settings["vip"]
    old = wait_for_one_holder(vip)
    prober = VIP.VipProber(vip)
    with UserTraffic(url=f"https://{vip}", retry_failed=RETRY_FAILED) as traffic:
        prober.start()
        time.sleep(3)
        fault = time.time()
        subprocess.run(["podman", "kill", old], capture_output=True, check=True)
        moved = prober.wait_for_answer(fault, old, timeout=20)
        time.sleep(3)
    prober.stop()
    new = holders_among(vip, [lb for lb in lb_hosts() if lb != old])
    plain = [loadgen().without_retry(record) for record in traffic.records]
    failed_after = [record for record in plain
                    if moved is not None and record["t"] >= moved and record["error"] is not None]
    figures = {"old": old, "new": new, "failover_s": None if moved is None else round(moved - fault, 2),
               "failed": VIP.failed_around(plain, fault, moved, loadgen().FAILURE_CLASSES),
               "failed_after": len(failed_after),
               "failed_with_retry": VIP.failed_around(traffic.records, fault, moved, loadgen().FAILURE_CLASSES)}
    record_traffic("pair: the holder's host killed", active_kind(), traffic, **figures)
    subprocess.run(["podman", "start", old], capture_output=True, check=True)
    wait_until_running(old)
    forget_ssh_masters(host_address(old))
    return figures, failed_after, traffic


@ONCE
def test_the_address_moves_within_3_s_when_the_holder_dies(failover):
    figures, _, _ = failover
    assert figures["failover_s"] is not None, figures
    assert figures["failover_s"] <= FAILOVER_GOAL, figures
    assert len(figures["new"]) == 1 and figures["new"][0] != figures["old"], figures


@ONCE
def test_no_request_sent_after_the_failover_fails(failover):
    figures, failed_after, traffic = failover
    assert failed_after == [], (figures, [(r["t"], r["kind"], r["error"], r.get("detail")) for r in failed_after[:10]])
    assert sum(1 for record in traffic.records if record["t"] >= time.time() - 600) > 0


@ONCE
def test_a_client_that_retries_sees_no_failed_request(failover):
    """Those in flight on the dead holder, and any in the gap, got their answer when sent again."""
    figures, _, traffic = failover
    assert traffic.failed() == {}, (figures, traffic.failed())
    assert figures["failed_with_retry"] == {"in_flight": 0, "in_the_gap": 0, "after": 0}, figures


@ONCE
def test_the_old_holder_back_does_not_take_the_address_back(failover, settings):
    """Preemption is off (lb_vip_preempt false): the address stays where it moved, though the old holder has
    the higher priority, and its balancer and keepalived run again."""
    figures, _, _ = failover
    old = container(figures["old"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and old.run("systemctl is-active keepalived").stdout.strip() != "active":
        time.sleep(1)
    time.sleep(5)
    assert holders(settings["vip"]) == figures["new"], figures


def balancer_started(lb: str, kind: str) -> int:
    """When the balancer's service last started on `lb` (systemd's monotonic clock of that host, microseconds)."""
    return int(container(lb).check_output(
        f"systemctl show -p ActiveEnterTimestampMonotonic --value {BALANCER_UNITS[kind]}"))


@pytest.fixture(scope="module")
def restart_through_the_pair(settings):
    """playbooks/balancer_restart.yml under traffic sent to the floating address: each balancer restarted, the
    standby first, then the holder after handing the address over."""
    vip, kind = settings["vip"], active_kind()
    holder = wait_for_one_holder(vip)
    started = {lb: balancer_started(lb, kind) for lb in lb_hosts()}
    prober = VIP.VipProber(vip)
    # The kept-alive connections to the holder cannot follow the address: a client resends a request whose
    # connection was reset (counted as resent; a request that failed twice still fails).
    with UserTraffic(url=f"https://{vip}", resend_reset=True) as traffic:
        prober.start()
        begun = time.time()
        result = run_playbook("playbooks/balancer_restart.yml", {})
        time.sleep(2)
    prober.stop()
    record_traffic("pair: the balancers restarted one at a time", kind, traffic)
    after = {lb: balancer_started(lb, kind) for lb in lb_hosts()}
    return result, traffic, holder, started, after, prober.balancers_since(begun)


@ONCE
def test_a_balancer_restart_restarts_each_balancer_the_holder_last(restart_through_the_pair):
    result, _, holder, started, after, answered = restart_through_the_pair
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert all(after[lb] > started[lb] for lb in lb_hosts()), (started, after)
    standbys = [lb for lb in lb_hosts() if lb != holder]
    # Each host's own clock: compared through the order the playbook printed them in, not the numbers.
    restarts = [block for block in result.stdout.split("TASK [")[1:] if block.startswith("lb : Restart the balancer, ")]
    said = [found[1] for found in (re.search(r"^(?:changed|ok): \[(\S+)\]", block, re.M) for block in restarts) if found]
    assert said == [*standbys, holder], said
    # The address left the holder once, for a standby, and stayed there (nopreempt).
    assert answered[0] == holder and len(answered) == 2 and answered[1] in standbys, answered


@ONCE
def test_no_request_through_the_floating_address_failed_during_the_balancer_restart(restart_through_the_pair):
    _, traffic, _, _, _, _ = restart_through_the_pair
    traffic.assert_none_failed()


def rogue_keepalived(settings: dict) -> str:
    """A keepalived on an app host for the pair's router id, priority 254 and preemptive, sending its adverts
    to both lb hosts: started, and its config path returned. Stop it with stop_rogue."""
    rogue = host_name("app1")
    host = container(rogue)
    host.check_output("DEBIAN_FRONTEND=noninteractive apt-get install -y -q keepalived >/dev/null 2>&1 "
                      "|| (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q keepalived)")
    peers = "\n".join(f"        {host_address(lb)}" for lb in lb_hosts())
    config = ROGUE_CONFIG.format(router_id=settings["router_id"], own=host_address(rogue), peers=peers,
                                 vip=settings["vip"], prefix=settings["prefix"])
    host.check_output(f"cat > {KEEPALIVED_CONFIG} <<'EOF'\n{config}EOF\nsystemctl restart keepalived")
    return rogue


def stop_rogue(rogue: str) -> None:
    container(rogue).run(f"systemctl stop keepalived; systemctl disable keepalived; rm -f {KEEPALIVED_CONFIG}")


def dropped_vrrp(lb: str) -> int:
    rules = container(lb).check_output(f"nft list table inet {VRRP_TABLE}")
    found = re.search(r"meta l4proto (?:vrrp|112) counter packets (\d+)", rules)
    return int(found[1]) if found else -1


def test_a_rogue_vrrp_speaker_does_not_make_the_holder_give_the_address_up(settings):
    """VRRPv3 has no authentication: the peers are restricted instead, by the firewall (VRRP from the other lb
    hosts only) and by keepalived (vrrp_check_unicast_src). A rogue that sends adverts of a higher priority
    gets no answer: the holder keeps the address. (A host with root on the same network can still answer ARP
    for the address by itself; keeping it from doing so is the network's job, not VRRP's.)"""
    vip = settings["vip"]
    holder = wait_for_one_holder(vip)
    dropped_before = dropped_vrrp(holder)
    rogue = rogue_keepalived(settings)
    try:
        time.sleep(6)
        dropped = dropped_vrrp(holder) - dropped_before
        still = holders(vip)
    finally:
        stop_rogue(rogue)
    assert dropped > 0, "the rogue's adverts never reached the holder: the test proves nothing"
    assert still == [holder], f"{holder} held {vip}; with the rogue running, the holders are {still}"
    # The holder's gratuitous ARP every 5 s takes the address back from a rogue that answered for it.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and balancer_said(vip) != (200, holder):
        time.sleep(0.5)
    assert balancer_said(vip, timeout=5) == (200, holder)


def test_without_the_peer_filters_the_rogue_does_take_the_address(settings):
    """The negative control of the test above: on the holder, the VRRP table dropped and keepalived told to take
    adverts from any source. The same rogue then makes the holder step down: the filters are what held."""
    vip = settings["vip"]
    holder = wait_for_one_holder(vip)
    lb = container(holder)
    lb.check_output(f"cp {KEEPALIVED_CONFIG} /root/keepalived.conf.saved"
                    f" && sed -i '/vrrp_check_unicast_src/d' {KEEPALIVED_CONFIG}"
                    f" && nft delete table inet {VRRP_TABLE} && systemctl reload keepalived")
    rogue = rogue_keepalived(settings)
    try:
        time.sleep(6)
        still = holders(vip)
    finally:
        stop_rogue(rogue)
        lb.check_output(f"cp /root/keepalived.conf.saved {KEEPALIVED_CONFIG}"
                        f" && nft -f /etc/nftables.d/rollgate-vrrp.nft && systemctl reload keepalived")
    assert holder not in still, f"without its filters, {holder} kept {vip} against the rogue: the control failed"
    wait_for_one_holder(vip)
