"""`--check --diff` on the running stack tells what a run would do and changes nothing (issue 39).

Run once, last, on the last balancer. A rolling deploy of a version never built says it would build it, for
which Python, install it, and move which batches; nothing is built on the controller and nothing changes on
a host. A site.yml with a changed app setting says which instances would restart; no instance restarts and
no config moves. "Nothing changed" is read on the hosts: each instance's main PID and version, the config
link and file, the releases on disk, and the balancer's config.
"""

import os
import re

from testlib import (APP_ENV_LINK, APP_ROOT, BALANCER_CONFIGS, active_kind, changed_counts, container,
                     fleet_version, group_vars, host_name, instances, run_playbook, stack)

APP_HOSTS = [host_name("app1"), host_name("app2")]
LB_HOST = host_name("lb1")
# Never built by scripts/run-molecule.sh (it builds the *_VERSION constants of test_upgrade.py only).
UNBUILT = "1.4.0.dev7"
# Every secret the app's config holds, by its inventory variable.
NEW_TOKEN = "check-mode-token-" + os.urandom(8).hex()
SECRET_NAMES = ["app_key", "redis_requirepass", "postgresql_app_password", "app_admin_password", "app_health_token"]


def host_state() -> dict:
    """What a run could change: per app host its instances (PID, readiness), config link and file and releases;
    the balancer's config."""
    state = {}
    for app in APP_HOSTS:
        host = container(app)
        state[app] = {
            "instances": instances(app),
            "config": host.check_output(f"readlink {APP_ENV_LINK} && sha256sum $(readlink -f {APP_ENV_LINK})"),
            "releases": host.check_output(f"ls {APP_ROOT}/releases"),
        }
    state[LB_HOST] = container(LB_HOST).check_output(f"sha256sum {BALANCER_CONFIGS[active_kind()]}")
    return state


def test_a_checked_deploy_of_an_unbuilt_version_says_what_it_would_do_and_changes_nothing():
    before = host_state()
    result = run_playbook("playbooks/rolling_deploy.yml", {"app_version": UNBUILT}, extra_args=["--check", "--diff"])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    said = " ".join(output.split())  # the messages, wrapped by the callback, on one line
    built = re.search(r"Check mode: would build the release of app_version " + re.escape(UNBUILT)
                      + r" on the controller, into (\S+):", said)
    assert built, output[-4000:]
    # One wheelhouse per Python of the fleet (the stack's is mixed: 3.11 on Debian 12, 3.13 on Debian 13).
    pythons = {container(app).check_output("python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'")
               for app in APP_HOSTS}
    assert all(f"(Python {python}," in output for python in pythons), (pythons, output[-4000:])
    assert f"Check mode: would install app_version {UNBUILT}" in output
    assert "Check mode: would roll " + UNBUILT + " out in 2 batch(es)" in said
    assert not os.path.exists(built.group(1)), f"--check built {built.group(1)} on the controller"
    assert host_state() == before


def test_a_checked_site_with_a_changed_setting_says_what_would_restart_and_changes_nothing():
    before = host_state()
    running = container(APP_HOSTS[0]).check_output(f"cat $(readlink -f {APP_ENV_LINK})")
    level = "error" if 'LOG_LEVEL="debug"' in running else "debug"
    # A new health token too: a secret, whose change the diff names without its value.
    result = run_playbook("site.yml", {"app_version": fleet_version(), "app_log_level": level,
                                       "app_health_token": NEW_TOKEN}, extra_args=["--check", "--diff"])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    said = " ".join(output.split())  # the messages, wrapped by the callback, on one line
    assert "Check mode: would restart, batch by batch behind the balancer: " + ", ".join(APP_HOSTS) in said, output[-4000:]
    # The diff of the config, which holds secrets: the setting that changes, both values, and no secret.
    was = re.search(r'^LOG_LEVEL="([a-z]*)"$', running, re.MULTILINE).group(1)
    # (The callback writes the message as YAML or as JSON, which escapes its quotes.)
    assert f'LOG_LEVEL (app_log_level): "{was}" -> "{level}"' in said.replace('\\"', '"'), output[-4000:]
    assert "HEALTH_TOKEN (app_health_token): changed (a secret, not shown)" in said, output[-4000:]
    secrets = {name: str(group_vars().get(name) or "") for name in SECRET_NAMES} | {"the new token": NEW_TOKEN}
    assert all(len(secrets[name]) >= 8 for name in SECRET_NAMES[:4]), "the scenario sets every required secret"
    leaked = [name for name, value in secrets.items() if value and value in output]
    assert leaked == [], f"the checked run printed the value of {leaked}"
    assert host_state() == before
    # The recap: the balancers', database and Redis hosts would not change (the app hosts would stage the
    # config). On Apache the pip task once said "changed" to every --check (it had extra_args).
    counts = changed_counts(result.stdout)
    unchanged = {host: counts[host] for host in (*stack().groups()["lb"], host_name("db1"), host_name("redis1"))}
    assert set(unchanged.values()) == {0}, counts
