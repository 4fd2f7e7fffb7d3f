"""Pure functions: password hashing, the allowlist, the rolling figures, the cache and limit scripts' math."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from inventory_service.config import parse_networks
from inventory_service.metrics import RollingWindow, percentile
from inventory_service.security import client_allowed, hash_password, verify_password


def test_a_password_verifies_against_its_hash_only() -> None:
    encoded = hash_password("correct horse")
    assert encoded.startswith("scrypt$")
    assert verify_password("correct horse", encoded)
    assert not verify_password("wrong horse", encoded)
    assert not verify_password("correct horse", "garbage")


def test_the_allowlist_matches_cidrs_and_mapped_addresses() -> None:
    networks = parse_networks("127.0.0.1/32, 10.0.0.0/8, ::1/128")
    assert client_allowed("127.0.0.1", networks)
    assert client_allowed("10.20.30.40", networks)
    assert client_allowed("::ffff:10.1.2.3", networks)
    assert client_allowed("::1", networks)
    assert not client_allowed("192.168.1.1", networks)
    assert not client_allowed("not-an-address", networks)
    assert not client_allowed(None, networks)


@given(st.lists(st.floats(min_value=0, max_value=10, allow_nan=False), min_size=1, max_size=200),
       st.sampled_from([0.5, 0.95, 0.99]))
def test_a_percentile_is_a_sample_with_enough_samples_at_or_below_it(values: list[float], fraction: float) -> None:
    ordered = sorted(values)
    result = percentile(ordered, fraction)
    assert result in ordered
    assert sum(v <= result for v in ordered) >= fraction * len(ordered)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_counts_the_last_minute_only() -> None:
    clock = FakeClock()
    window = RollingWindow(clock)
    for _ in range(10):
        window.record(0.010, 200)
    window.record(0.200, 500)
    figures = window.figures()
    assert figures.requests_per_minute == 11
    assert round(figures.error_rate_percent, 2) == round(100 / 11, 2)
    assert figures.response_time_p99_ms == 200.0
    clock.now += 61
    figures = window.figures()
    assert figures.requests_per_minute == 0
    assert figures.response_time_p95_ms is None


def test_networks_accept_host_addresses() -> None:
    assert parse_networks("192.0.2.7") == (ipaddress.ip_network("192.0.2.7/32"),)
