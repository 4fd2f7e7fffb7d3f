"""The health contract, endpoint by endpoint."""

from __future__ import annotations

import httpx

from support import AppProcess


def test_health_reports_every_contract_field(app: AppProcess) -> None:
    response = httpx.get(app.base_url + "/health")
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"status", "timestamp", "version", "environment", "database", "cache", "memory_usage",
                         "memory_peak", "uptime"}
    assert body["status"] == "healthy"
    assert body["version"] == "1.0.0-test"
    assert body["environment"] == "testing"
    assert body["database"]["status"] == "up" and body["database"]["response_time"] >= 0
    assert body["cache"]["status"] == "up"
    assert body["memory_usage"] > 0 and body["memory_peak"] >= body["memory_usage"] // 2
    assert body["uptime"] > 0
    assert body["timestamp"].endswith("Z")


def test_liveness_answers_without_dependencies(app: AppProcess) -> None:
    response = httpx.get(app.base_url + "/health/liveness")
    assert response.status_code == 200
    assert response.json()["status"] == "alive"


def test_readiness_is_ready_with_the_version(app: AppProcess) -> None:
    response = httpx.get(app.base_url + "/health/readiness")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "version": "1.0.0-test", "instance": app.name}


def test_detailed_adds_performance_pool_and_balancer_figures(app: AppProcess) -> None:
    httpx.get(app.base_url + "/items")
    body = httpx.get(app.base_url + "/health/detailed").json()
    assert body["status"] == "healthy"
    assert body["readiness"]["ready"] is True
    assert body["performance"]["requests_per_minute"] >= 1
    assert set(body["pool"]) >= {"in_use", "idle", "size", "max"}
    assert set(body["balancer"]) >= {"active_connections", "requests_per_minute", "response_time",
                                     "error_rate_percent", "cache_hit_rate_percent", "database_connections", "health"}


def test_balancer_metrics_have_every_figure(app: AppProcess) -> None:
    for _ in range(3):
        httpx.get(app.base_url + "/items")
    body = httpx.get(app.base_url + "/health/metrics").json()
    assert body["active_connections"] >= 1  # this request itself
    assert body["requests_per_minute"] >= 3
    assert set(body["response_time"]) == {"avg_ms", "p95_ms", "p99_ms"}
    assert body["response_time"]["p99_ms"] >= body["response_time"]["p95_ms"] > 0
    assert 0 <= body["error_rate_percent"] <= 100
    assert set(body["database_connections"]) == {"in_use", "idle", "max"}
    assert body["health"] == {"status": "healthy", "ready": True, "reason": None}
    assert body["instance"] == app.name


def test_prometheus_text_has_the_same_figures(app: AppProcess) -> None:
    response = httpx.get(app.base_url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    for name in ("http_requests_total", "http_requests_in_flight", "http_request_duration_seconds_bucket",
                 "inventory_requests_per_minute", "inventory_response_time_seconds", "inventory_error_rate_percent",
                 "inventory_db_connections", "inventory_cache_hits_total", "inventory_ready 1.0",
                 "process_resident_memory_bytes"):
        assert name in response.text


def test_the_pool_reuses_connections(app: AppProcess) -> None:
    before = httpx.get(app.base_url + "/health/detailed").json()["pool"]
    for _ in range(40):
        httpx.get(app.base_url + "/items")
    after = httpx.get(app.base_url + "/health/detailed").json()["pool"]
    assert after["requests_served"] - before["requests_served"] >= 40
    assert after["connections_opened"] == before["connections_opened"]
    assert after["size"] <= after["max"] == 5


def test_restricted_endpoints_refuse_clients_off_the_allowlist(launcher) -> None:
    guarded = launcher.start("guarded", HEALTH_ALLOWED_IPS="192.0.2.0/24", HEALTH_TOKEN="s3cret-token")
    for path in ("/health/detailed", "/health/metrics", "/metrics"):
        assert httpx.get(guarded.base_url + path).status_code == 403
        assert httpx.get(guarded.base_url + path, headers={"X-Health-Token": "wrong"}).status_code == 403
        assert httpx.get(guarded.base_url + path, headers={"X-Health-Token": "s3cret-token"}).status_code == 200
    for path in ("/health", "/health/liveness", "/health/readiness"):
        assert httpx.get(guarded.base_url + path).status_code == 200


def test_forced_readiness_failure_for_rollout_tests(launcher) -> None:
    broken = launcher.start("forced", wait="listening", APP_FAIL_READINESS="1")
    response = httpx.get(broken.base_url + "/health/readiness")
    assert response.status_code == 503
    assert response.json()["reason"] == "forced by APP_FAIL_READINESS"
    assert httpx.get(broken.base_url + "/health/liveness").status_code == 200


def test_a_release_forced_unready_holds_back_api_traffic(launcher) -> None:
    # A release that never becomes ready serves nobody: what a deploy without a gate hands every user.
    broken = launcher.start("forced-api", wait="listening", APP_FAIL_READINESS="1")
    response = httpx.get(broken.base_url + "/items")
    assert response.status_code == 503
    assert response.json()["detail"] == "the service is not ready (forced by APP_FAIL_READINESS)"
    assert httpx.get(broken.base_url + "/health").status_code == 200
