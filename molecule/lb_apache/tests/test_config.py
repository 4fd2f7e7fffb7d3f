"""Apache's checker guards the live configuration; a drain is a re-render and a graceful reload.

The last two tests converge the role again (slow): once with a config Apache rejects, once with a
drained backend, then once more as converge.yml left it.
"""

import re

from lb_apache_helpers import INSTANCES, SITE, converge, get, instances_answering, wait_until

# The balancer host by name: molecule/conftest.py resolves only host names in molecule's inventory.
testinfra_hosts = ["lba-lb1"]

CHECKER = "/usr/local/sbin/rollgate-apache-check"


def _main_pid(host) -> str:
    return host.check_output("systemctl show --property=MainPID --value apache2")


def test_the_live_config_passes_apaches_checker(host):
    assert host.run("apache2ctl -t").rc == 0


def test_the_checker_accepts_the_live_site(host):
    host.check_output(f"cp {SITE} /tmp/candidate.conf")
    assert host.run(f"{CHECKER} /tmp/candidate.conf {SITE}").rc == 0


def test_the_checker_refuses_garbage_without_touching_the_live_site(host):
    before = host.file(SITE).sha256sum
    host.check_output("printf 'ThisIsNotADirective on\\n' > /tmp/candidate.conf")
    checked = host.run(f"{CHECKER} /tmp/candidate.conf {SITE}")
    assert checked.rc != 0
    assert "ThisIsNotADirective" in checked.stderr
    assert host.file(SITE).sha256sum == before


def test_the_checker_refuses_a_site_that_breaks_the_whole_config(host):
    # Valid on its own, fatal next to the live config: a second Listen on the same port.
    host.check_output(f"cp {SITE} /tmp/candidate.conf && echo 'Listen 80' >> /tmp/candidate.conf")
    assert host.run(f"{CHECKER} /tmp/candidate.conf {SITE}").rc != 0


def test_a_config_apache_rejects_never_goes_live(host):
    before, pid = host.file(SITE).sha256sum, _main_pid(host)
    run = converge({"lb_apache_extra_config": "ThisIsNotADirective on"})
    assert run.returncode != 0
    assert "Render the site after Apache accepts it" in run.stdout
    assert "ThisIsNotADirective" in run.stdout + run.stderr
    assert host.file(SITE).sha256sum == before
    assert _main_pid(host) == pid
    assert get("/lb-health").status == 200
    assert get("/who").header("X-Instance") in INSTANCES


def test_a_drained_backend_gets_no_new_requests_after_a_graceful_reload(host):
    pid = _main_pid(host)
    run = converge({"lb_drained_backends": ["lba-app1_8000"]})
    try:
        assert run.returncode == 0, run.stdout[-3000:]
        assert "Reload Apache gracefully" in run.stdout
        assert _main_pid(host) == pid
        site = host.file(SITE).content_string
        line = next(line for line in site.splitlines() if "route=lba-app1_8000 " in line)
        assert re.search(r"status=\+N\b", line)
        answered = set(instances_answering(36)) | set(instances_answering(12, https=True))
        assert answered == INSTANCES - {"lba-app1:8000"}
    finally:
        restored = converge({})
        assert restored.returncode == 0, restored.stdout[-3000:]
        assert wait_until(lambda: "lba-app1:8000" in instances_answering(12)), "never came back"
