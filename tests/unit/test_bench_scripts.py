"""Every benchmark script under scripts/bench starts: its imports resolve and it prints its usage. They run
for minutes against the lab, so a broken import would otherwise show only when someone measures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench"


@pytest.mark.parametrize("script", sorted(path.name for path in BENCH.glob("*.py")))
def test_the_benchmark_script_prints_its_usage(script):
    result = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout


def test_the_site_cases_keep_the_version_the_lab_runs_when_they_start():
    """site.yml stops rather than move the lab to another version (issue 34): a site.yml case after a good
    deploy passes that deploy's version, one after the setup (the inventory's version) passes none, and a
    failing deploy (rolled back) changes nothing."""
    sys.path.insert(0, str(BENCH))
    import zero_downtime  # noqa: PLC0415 - needs the path above

    versions = {"rolling": "1.9.1", "naive": "1.9.2", "failing": "1.9.3.dev1"}
    cases = zero_downtime.build_cases(["control", "rolling", "converge_config", "failing", "naive",
                                       "converge_failing_config"], versions, {"lb_kind": "nginx"})
    by_name = {case.name: case for case in cases}
    assert by_name["control"].extra_vars == {"lb_kind": "nginx"}
    assert by_name["converge_config"].extra_vars == {"lb_kind": "nginx", "app_version": "1.9.1",
                                                     **zero_downtime.CONVERGE_CHANGE}
    assert by_name["converge_failing_config"].extra_vars["app_version"] == "1.9.2"
    assert [case.expect_success for case in cases] == [True, True, True, False, True, False]
    assert by_name["failing"].extra_vars["app_fail_readiness"] is True
    after_switch = zero_downtime.build_cases(["rolling", "converge_version", "control"], versions, {"lb_kind": "nginx"})
    assert after_switch[1].extra_vars == {"lb_kind": "nginx", "app_converge_version": True}
    assert after_switch[2].extra_vars == {"lb_kind": "nginx"}
