"""A balancer pair's floating address seen from a client: which balancer answers it, and from when.

    .venv/bin/python scripts/bench/vip.py 10.89.0.250 [--seconds 60]

prints each change of the balancer that answers (and each gap without an answer) while it watches.

Every response of a pair carries `X-Balancer: <lb host>` (roles/lb, lb_vip set). VipProber asks the address
GET /lb-health every 50 ms, each time on a new connection (a kept-alive one would stay with the balancer it
reached), and keeps (unix time, status or None, X-Balancer). The fault suite (faults.py) and the pair's stack
tests (molecule/resources/stack_tests/test_pair.py) read the failover from it: the fault to the first answer
from another balancer.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import threading
import time
from collections.abc import Callable, Sequence


def balancer_said(vip: str, timeout: float = 0.5, port: int = 80) -> tuple[int | None, str]:
    """GET /lb-health on the floating address, a new connection: (status, X-Balancer); (None, "") when no
    answer came within `timeout`."""
    connection = http.client.HTTPConnection(vip, port, timeout=timeout)
    try:
        connection.request("GET", "/lb-health")
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("X-Balancer", "")
    except (OSError, http.client.HTTPException):
        return None, ""
    finally:
        connection.close()


class VipProber(threading.Thread):
    """Asks the floating address which balancer answers, every `every` seconds, until stop()."""

    def __init__(self, vip: str, every: float = 0.05) -> None:
        super().__init__(name="vip-prober", daemon=True)
        self.vip, self.every = vip, every
        self.answers: list[tuple[float, int | None, str]] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            status, balancer = balancer_said(self.vip)
            self.answers.append((time.time(), status, balancer))
            self.stop_event.wait(self.every)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)

    def first_answer(self, after: float, other_than: str) -> float | None:
        """The time of the first good answer at or after `after` from a balancer other than `other_than`."""
        return next((at for at, status, balancer in list(self.answers)
                     if at >= after and status == 200 and balancer and balancer != other_than), None)

    def back_after_gap(self, after: float, balancer: str) -> float | None:
        """The time of the first good answer from `balancer` after a failed one (no answer, or not 200), both at or
        after `after`: the balancer came back where it was, the address never moved (systemd restarted it)."""
        gap = False
        for at, status, who in list(self.answers):
            if at < after:
                continue
            if status != 200:
                gap = True
            elif gap and who == balancer:
                return at
        return None

    def gap_seen(self, after: float) -> bool:
        """Whether any probe at or after `after` got no good answer."""
        return any(status != 200 for at, status, _ in list(self.answers) if at >= after)

    def balancers_since(self, after: float) -> list[str]:
        """The balancers that answered from `after` on, in order, each change once: ["lb2"], ["lb2", "lb1"]."""
        seen: list[str] = []
        for at, status, balancer in list(self.answers):
            if at >= after and status == 200 and balancer and (not seen or seen[-1] != balancer):
                seen.append(balancer)
        return seen

    def wait_for_answer(self, after: float, other_than: str, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            moved = self.first_answer(after, other_than)
            if moved is not None:
                return moved
            time.sleep(0.05)
        return self.first_answer(after, other_than)


def holders(vip: str, hosts: Sequence[str], run: Callable[[str, str], str]) -> list[str]:
    """Those of `hosts` that have the floating address on an interface now; `run(host, command)` gives the
    command's output on the host."""
    return [host for host in hosts if run(host, f"ip -4 -o address show to {vip}/32").strip()]


def failed_around(records: Sequence[dict], fault: float, moved: float | None,
                  failure_classes: Sequence[str]) -> dict[str, int]:
    """A failover's failed requests (loadgen records: scheduled time `t`, `latency_ms`, `error`), split: in
    flight at the fault (sent before it, answered after), sent between the fault and the first answer from the
    new holder (the gap), and sent after it."""
    failed = [record for record in records if record.get("error") in failure_classes]
    ends = {id(record): record["t"] + (record.get("latency_ms") or 0) / 1000 for record in failed}
    moved_at = moved if moved is not None else float("inf")
    return {
        "in_flight": sum(1 for record in failed if record["t"] < fault <= ends[id(record)]),
        "in_the_gap": sum(1 for record in failed if fault <= record["t"] < moved_at),
        "after": sum(1 for record in failed if record["t"] >= moved_at),
    }


def changes(answers: Sequence[tuple[float, int | None, str]]) -> list[tuple[float, str]]:
    """Each change of who answers: (time, balancer), "(no answer)" for a gap."""
    seen: list[tuple[float, str]] = []
    for at, status, balancer in answers:
        who = (balancer or "(no balancer header)") if status is not None else "(no answer)"
        if not seen or seen[-1][1] != who:
            seen.append((at, who))
    return seen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Watch which balancer answers a pair's floating address.")
    parser.add_argument("vip", help="the floating address (lb_vip)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to watch (default: %(default)s)")
    args = parser.parse_args(argv)
    prober = VipProber(args.vip)
    prober.start()
    time.sleep(args.seconds)
    prober.stop()
    start = prober.answers[0][0] if prober.answers else time.time()
    for at, who in changes(prober.answers):
        print(f"{at - start:8.2f} s  {who}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
