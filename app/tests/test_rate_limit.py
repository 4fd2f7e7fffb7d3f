"""The rate limit is shared by all instances through Redis: 429 with Retry-After, probes exempt."""

from __future__ import annotations

import httpx


def test_the_limit_is_shared_across_instances(launcher) -> None:
    # A store no other test touches. Three a minute: a burst of three passes, then one every 20 s,
    # which leaves this test 20 s for its requests before the limit would let another through.
    first = launcher.start("limited-a", RATE_LIMIT_PER_MINUTE="3", REDIS_DB="14")
    second = launcher.start("limited-b", RATE_LIMIT_PER_MINUTE="3", REDIS_DB="14")
    statuses = []
    for n in range(8):
        target = first if n % 2 else second
        response = httpx.get(target.base_url + "/items")
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
            assert response.headers["x-ratelimit-remaining"] == "0"
            assert response.headers["x-ratelimit-limit"] == "3"
    assert statuses == [200] * 3 + [429] * 5


def test_probes_are_never_rate_limited(launcher) -> None:
    limited = launcher.start("limited-probes", RATE_LIMIT_PER_MINUTE="2", REDIS_DB="15")
    for _ in range(6):
        assert httpx.get(limited.base_url + "/health/readiness").status_code == 200
        assert httpx.get(limited.base_url + "/health/liveness").status_code == 200
