"""Bad inventories stop site.yml and the rolling deploy before any host is contacted, with a message
naming the variable. The hosts are TEST-NET addresses (192.0.2.0/24) over SSH: nothing answers there,
so an inventory that passed the checks would fail as unreachable instead, as the control case shows."""

import copy
import os
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

GOOD_INVENTORY = {
    "all": {
        "vars": {
            "ansible_connection": "ssh",
            "ansible_ssh_common_args": "-o ConnectTimeout=2",
            "lb_kind": "nginx",
            "lb_tls_self_signed": True,
            "app_version": "1.0.0",
            "app_key": "0123456789abcdef0123456789abcdef",
            "redis_requirepass": "a-redis-password",
            "postgresql_app_password": "a-database-password",
            "app_admin_password": "an-admin-password",
        },
        "children": {
            "lb": {"hosts": {"lb1": {"ansible_host": "192.0.2.10"}}},
            "app": {"hosts": {"app1": {"ansible_host": "192.0.2.11"}, "app2": {"ansible_host": "192.0.2.12"}}},
            "redis": {"hosts": {"redis1": {"ansible_host": "192.0.2.13"}}},
            "db": {"hosts": {"db1": {"ansible_host": "192.0.2.14"}}},
        },
    }
}


def run(tmp_path: Path, inventory: dict, playbook: str = "site.yml", *extra: str,
        env: dict | None = None) -> subprocess.CompletedProcess:
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory))
    environment = {**os.environ, "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / "facts"),
                   "ANSIBLE_CALLBACK_RESULT_FORMAT": "json", **(env or {})}
    return subprocess.run(["ansible-playbook", "-i", str(path), playbook, *extra], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=300)


def changed(inventory: dict, path: str, value) -> dict:
    """A copy of inventory with the value at a slash-separated path set (None deletes it)."""
    result = copy.deepcopy(inventory)
    *parents, last = path.split("/")
    node = result
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return result


APP1 = "all/children/app/hosts/app1"
APP2 = "all/children/app/hosts/app2"
ALL = "all/vars"
SPEC_FIX = "Set each variable named to a value of the type and choices its role's meta/argument_specs.yml gives"
APP_FIX = "Set each variable named to a value the service accepts (its rules: app/src/inventory_service/config.py)"
SECRET_FIX = "in the inventory (in production from ansible-vault"

# Each bad input: the edits that make it ([path, value] pairs, None deletes) and fragments of the message,
# which must name the variable and say the fix. site.yml stops on each before contacting any host.
LB2 = "all/children/lb/hosts/lb2"
LB_VARS = "all/children/lb/vars"
# A second balancer and the pair's floating address.
PAIR = [(LB2, {"ansible_host": "192.0.2.15"}), (LB_VARS, {"lb_vip": "192.0.2.200"})]

BAD_INPUTS = {
    "unknown balancer": ([(f"{ALL}/lb_kind", "varnish")],
                         ["lb_kind must be one of: nginx, haproxy, apache, got: varnish", SPEC_FIX]),
    "app host without ports": ([(f"{APP1}/app_instance_ports", [])],
                               ["app1", "app_instance_ports", "list at least one port"]),
    "port out of range": ([(f"{APP1}/app_instance_ports", [8000, 70000])],
                          ["app_instance_ports has 70000", "between 1 and 65535"]),
    "port 0": ([(f"{APP1}/app_instance_ports", [0])], ["app_instance_ports has 0", "between 1 and 65535"]),
    "port listed twice on a host": ([(f"{APP1}/app_instance_ports", [8000, 8000])],
                                    ["app_instance_ports lists port 8000 more than once", "its own port"]),
    "ports given as a string": ([(f"{APP1}/app_instance_ports", "8000")],
                                ["app_instance_ports must be a list of ports such as [8000, 8001]"]),
    "duplicate address:port": ([(f"{APP1}/ansible_host", "192.0.2.12")],
                               ["192.0.2.12:8000", "set app_address to each host's own address"]),
    "non-numeric capacity": ([(f"{APP1}/app_capacity", "lots")],
                             ["argument 'app_capacity' is of type str and we were unable to convert to float", SPEC_FIX]),
    "negative capacity": ([(f"{APP1}/app_capacity", -1)], ["app_capacity must be a finite number >= 0", "got -1"]),
    "every capacity 0": ([(f"{APP1}/app_capacity", 0), (f"{APP2}/app_capacity", 0)],
                         ["every backend has capacity 0", "give at least one a positive capacity"]),
    "missing app key": ([(f"{ALL}/app_key", None)], ["app_key (the app's session signing key) is not set", SECRET_FIX]),
    "short app key": ([(f"{ALL}/app_key", "short")],
                      ["app1: app_key (APP_KEY) is 5 characters long, fewer than 32", APP_FIX]),
    "missing vault secret": ([(f"{ALL}/app_key", "{{ vault_app_key }}")],
                             ["app_key (the app's session signing key) is not set, or is set to a variable that is not "
                              "defined, such as a vault variable", "--ask-vault-pass or --vault-id"]),
    "missing Redis password": ([(f"{ALL}/redis_requirepass", None)],
                               ["redis_requirepass (the Redis password) is not set", SECRET_FIX]),
    "missing database password": ([(f"{ALL}/postgresql_app_password", None)],
                                  ["postgresql_app_password (the app's database password) is not set", SECRET_FIX]),
    "no app hosts": ([("all/children/app/hosts", {})], ["no hosts in group 'app'", "needs lb, app, redis and db"]),
    "no database host": ([("all/children/db/hosts", {})], ["no hosts in group 'db'", "needs lb, app, redis and db"]),
    "version not PEP 440": ([(f"{ALL}/app_version", "latest")],
                            ["app_version must name a release", "normalised PEP 440 version such as \"1.0.0\"",
                             "got \"latest\""]),
    "version on the app hosts only": ([(f"{ALL}/app_version", None), (f"{APP1}/app_version", "1.0.0"),
                                       (f"{APP2}/app_version", "1.0.0")],
                                      ["app_version is not set for lb1: set it on the group all"]),
    "version not quoted": ([(f"{ALL}/app_version", 1.0)], ["app_version must name a release as a quoted", "(float)"]),
    "version that does not exist": ([(f"{ALL}/app_version", "9.9.9"), (f"{ALL}/app_build_from_source", False)],
                                    ["app_version 9.9.9 does not exist on the controller",
                                     "ansible-playbook playbooks/build_release.yml -e app_version=9.9.9"]),
    "source to build from missing": ([(f"{ALL}/app_source_dir", "/nonexistent/app")],
                                     ["cannot be built: app_source_dir (/nonexistent/app) has no pyproject.toml",
                                      "Set app_source_dir to the service's source tree"]),
    "unknown app environment": ([(f"{ALL}/app_env", "prod")],
                                ["app_env must be one of: production, staging, testing, development, local", SPEC_FIX]),
    "database pool max below min": ([(f"{ALL}/app_db_pool_min", 5), (f"{ALL}/app_db_pool_max", 1)],
                                    ["app1: app_db_pool_max (DB_POOL_MAX) must be at least app_db_pool_min (5), got 1",
                                     APP_FIX]),
    # The service's own validator, run on the controller: ranges, encodings, networks the specs do not know.
    "rate limit below 0": ([(f"{ALL}/app_rate_limit_per_minute", -5)],
                           ["app2: app_rate_limit_per_minute (RATE_LIMIT_PER_MINUTE) must be an integer from 0 to "
                            "10000000, got '-5'", APP_FIX]),
    "health allowlist not a network": ([(f"{APP2}/app_health_allowed_networks", ["10.0.0.0/33"])],
                                       ["app2: app_health_allowed_networks (HEALTH_ALLOWED_IPS) must be a "
                                        "comma-separated list of addresses or CIDRs, got '10.0.0.0/33'", APP_FIX]),
    "Redis database beyond 15": ([(f"{ALL}/app_redis_cache_db", 16)],
                                 ["app_redis_cache_db (REDIS_CACHE_DB) must be an integer from 0 to 15, got '16'"]),
    "negative drain timeout": ([(f"{APP1}/app_drain_timeout", -1)],
                               ["app1: app_drain_timeout (DRAIN_TIMEOUT) must be a number of seconds from 0 to 3600"]),
    "short admin password": ([(f"{ALL}/app_admin_password", "short")],
                             ["app_admin_password (ADMIN_PASSWORD) must be at least 8 characters long", APP_FIX]),
    "extra env replacing a role variable": ([(f"{ALL}/app_extra_env", {"APP_KEY": "x"})],
                                            ["app_extra_env sets APP_KEY", "set those instead"]),
    "Redis port 0": ([(f"{ALL}/redis_port", 0)], ["redis_port must be a TCP port between 1 and 65535, got 0"]),
    "too few Redis databases": ([(f"{ALL}/redis_databases", 2)],
                                ["redis_databases is 2", "set it to at least 4"]),
    "database name not an identifier": ([(f"{ALL}/postgresql_app_database", "Inventory-DB")],
                                        ["postgresql_app_database (Inventory-DB)", "must be lowercase PostgreSQL identifiers"]),
    "balancer HTTP port 0": ([(f"{ALL}/lb_http_port", 0)],
                             ["lb_http_port (0) and lb_https_port (443) must be TCP ports between 1 and 65535"]),
    "same HTTP and HTTPS port": ([(f"{ALL}/lb_https_port", 80)],
                                 ["lb_http_port and lb_https_port are both 80", "give HTTPS its own port"]),
    "own certificate not given": ([(f"{ALL}/lb_tls_self_signed", False)],
                                  ["lb_tls_self_signed is false, so set lb_tls_certificate_src and lb_tls_private_key_src"]),
    "certificate file not on the controller": ([(f"{ALL}/lb_tls_self_signed", False),
                                                (f"{ALL}/lb_tls_certificate_src", "/nonexistent/site.crt"),
                                                (f"{ALL}/lb_tls_private_key_src", "/nonexistent/site.key")],
                                               ["lb_tls_certificate_src is /nonexistent/site.crt, which is not a file on "
                                                "the controller", "give the path of your certificate"]),
    "Redis port as the app sees it differs": ([(f"{ALL}/app_redis_port", 6380)],
                                              ["app1: app_redis_port is 6380, but redis1 (the first host of group "
                                               "redis, which the app uses) sets redis_port 6379",
                                               "set both to one port"]),
    "database port set on its group only": ([("all/children/db/hosts/db1/postgresql_port", 5433)],
                                            ["app2: app_db_port is 5432, but db1", "sets postgresql_port 5433"]),
    "one port for two things on the balancer": ([(f"{ALL}/lb_kind", "haproxy"), (f"{ALL}/lb_https_port", 8404)],
                                                ["lb1: port 8404 is given to lb_haproxy_stats_port and lb_https_port: "
                                                 "give each its own port"]),
    # Address fields that hold no address, and a listen address the balancer could never reach.
    "an app address with a scheme": ([(f"{APP1}/app_address", "http://192.0.2.11")],
                                     ["app1: app_address must be an IP address or a DNS name, such as 10.0.0.5 or "
                                      "app1.internal, without a scheme, port or path; got 'http://192.0.2.11'"]),
    "a Redis host with its port": ([(f"{ALL}/app_redis_host", "192.0.2.13:6379")],
                                   ["app_redis_host must be an IP address or a DNS name", "got '192.0.2.13:6379'"]),
    "instances listening on loopback only": ([(f"{ALL}/app_listen_address", "127.0.0.1")],
                                             ["app1: app_listen_address is 127.0.0.1, a loopback address, which the "
                                              "balancer on lb1 cannot reach from its host: set it to 0.0.0.0"]),
    # The balancer's own checker, on the controller, on the config lb1 would get: the specs pass these types.
    "a size nginx does not read": ([(f"{ALL}/lb_nginx_client_max_body_size", "1 MB")],
                                   ["nginx on the controller refuses the nginx config rendered for lb1", "`client_max_body_size 1 MB;`, "
                                    "which holds lb_nginx_client_max_body_size", "a value nginx accepts"]),
    "a network HAProxy does not read": ([(f"{ALL}/lb_kind", "haproxy"),
                                         (f"{ALL}/lb_metrics_allowed_networks", ["10.0.0.0/33"])],
                                        ["haproxy on the controller refuses the haproxy config rendered for lb1",
                                         "`acl metrics_client src 10.0.0.0/33`, which holds lb_metrics_allowed_networks"]),
    "a network Apache does not read": ([(f"{ALL}/lb_kind", "apache"),
                                        (f"{ALL}/lb_metrics_allowed_networks", ["10.0.0.0/33"])],
                                       ["apache2 on the controller refuses the apache config rendered for lb1",
                                        "`Require ip 10.0.0.0/33`, which holds lb_metrics_allowed_networks"]),
    "draining an unknown backend": ([(f"{ALL}/lb_drained_backends", ["app9_8000"])],
                                    ["lb_drained_backends names app9_8000", "use <host>_<port> names from app1_8000"]),
    # A balancer pair (lb_vip): what the inventory alone shows. The VIP against the hosts' networks needs
    # the hosts (the lab's stack test_pair.py and test_bad_input.py).
    "two balancer kinds in a pair": (PAIR + [(f"{LB2}/lb_kind", "apache")],
                                     ["lb_kind differs between the lb hosts (lb1: 'nginx'; lb2: 'apache'): the "
                                      "floating address moves between them, and each must serve the same way, so set "
                                      "lb_kind once for the group lb"]),
    "a VRRP router id outside 1-255": (PAIR + [(f"{LB_VARS}/lb_vrrp_router_id", 300)],
                                       ["lb_vrrp_router_id must be a whole number from 1 to 255", "got 300"]),
    "a VIP that is a host's address": (PAIR + [(f"{LB_VARS}/lb_vip", "192.0.2.11")],
                                       ["lb_vip is 192.0.2.11, the address of app1 (its ansible_host): the floating "
                                        "address must be one no host has"]),
    "a VIP per host": (PAIR + [(f"{LB2}/lb_vip", "192.0.2.201")],
                       ["lb_vip differs between the lb hosts (lb1: '192.0.2.200'; lb2: '192.0.2.201')"]),
}


def with_edits(edits: list) -> dict:
    inventory = GOOD_INVENTORY
    for path, value in edits:
        inventory = changed(inventory, path, value)
    return inventory


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_stops_site_before_any_host_is_contacted(tmp_path, case):
    edits, fragments = BAD_INPUTS[case]
    result = run(tmp_path, with_edits(edits))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "UNREACHABLE" not in output, output[-3000:]
    for fragment in fragments:
        assert fragment in output, (fragment, output[-3000:])


def test_a_good_inventory_passes_the_checks_and_stops_when_the_hosts_do_not_answer(tmp_path):
    """Every host is tried, and the run stops naming each silent one, before any play changes a host."""
    result = run(tmp_path, GOOD_INVENTORY)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "a variable no role knows" not in output
    assert "Check each host's variables against its roles' argument specs" in output
    assert "5 host(s) of the inventory did not answer, so no host was changed" in output, output[-3000:]
    for host, address in [("lb1", "192.0.2.10"), ("app1", "192.0.2.11"), ("db1", "192.0.2.14")]:
        assert f"{host} ({address}: " in output
    assert "Fix the connection to each" in output
    assert "Prepare every host" not in output


def test_a_controller_without_the_balancers_checker_names_the_package_and_goes_on(tmp_path):
    """Never install a balancer on an operator's controller: say what would check the config, and go on
    (the lb host checks it before its reload). nginx lives in /usr/sbin, left off PATH here."""
    path = os.pathsep.join(entry for entry in os.environ["PATH"].split(os.pathsep) if not entry.endswith("sbin"))
    inventory = with_edits([(f"{ALL}/lb_nginx_client_max_body_size", "1 MB")])
    environment = {"PATH": path}
    result = run(tmp_path, inventory, "site.yml", env=environment)
    output = result.stdout + result.stderr
    assert ("nginx is not installed on the controller, so it was not checked there: install the package nginx on "
            "the controller") in output
    assert "5 host(s) of the inventory did not answer, so no host was changed" in output, output[-3000:]


# The rolling deploy: its settings, then the inventory it shares with site.yml.
BAD_DEPLOYS = {
    "unknown failure policy": (["-e", "rollout_on_failure=pray"],
                               ["rollout_on_failure must be one of: rollback_batch, rollback_all"]),
    "batch size 0": (["-e", "rollout_batch_size=0"], ["rollout_batch_size must be a whole number >= 1"]),
    "batch size over 100%": (["-e", "rollout_batch_size=150%"],
                             ["rollout_batch_size '150%' must be a percentage above 0% and at most 100%"]),
    "negative slow start": (["-e", "rollout_slow_start=-5"], ["rollout_slow_start must be"]),
    "negative drain timeout": (["-e", "rollout_drain_timeout=-1"],
                               ["rollout_drain_timeout must be a whole number >= 0 (such as 60), got '-1'"]),
    "gate of 0 readiness checks": (["-e", "rollout_gate_successes=0"],
                                   ["rollout_gate_successes must be a whole number >= 1 (such as 2), got '0'"]),
    "gate timeout 0 and balancer timeout negative": (
        ["-e", "rollout_gate_timeout=0", "-e", "rollout_balancer_timeout=-5"],
        ["rollout_gate_timeout must be a whole number >= 1 (such as 90), got '0'",
         "rollout_balancer_timeout must be a whole number >= 1 (such as 60), got '-5'"]),
    "in-flight path not a path": (["-e", "rollout_in_flight_path=health/metrics"],
                                  ["rollout_in_flight_path must be the path of each instance's metrics, starting with /"]),
    "app group renamed": (["-e", "rollout_app_group=apps"],
                          ["rollout_app_group is 'apps', which is not a group of the inventory (its groups: app, db, lb, "
                           "redis): set rollout_app_group to the group of the app hosts"]),
    "hook not an absolute path": (["-e", "rollout_after_batch_tasks_file=hooks/smoke.yml"],
                                  ["rollout_after_batch_tasks_file is hooks/smoke.yml, which is not a file on the controller",
                                   "give the task file's absolute path", "/hooks/after_batch.yml"]),
    "unknown balancer": (["-e", "lb_kind=squid"], ["lb_kind must be one of: nginx, haproxy, apache", SPEC_FIX]),
    "version not PEP 440": (["-e", "app_version=banana"], ["app_version must name a release", "got \"banana\""]),
    "version that does not exist": (["-e", "app_version=9.9.9", "-e", "app_build_from_source=false"],
                                    ["app_version 9.9.9 does not exist on the controller",
                                     "ansible-playbook playbooks/build_release.yml -e app_version=9.9.9"]),
}


def assert_bad_rollout_settings_stop(tmp_path, playbook: str, case: str) -> None:
    """`playbook` with the BAD_DEPLOYS case fails naming each fragment, before any host is contacted."""
    extra, fragments = BAD_DEPLOYS[case]
    result = run(tmp_path, GOOD_INVENTORY, playbook, *extra)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "UNREACHABLE" not in output, output[-3000:]
    for fragment in fragments:
        assert fragment in output, (fragment, output[-3000:])


@pytest.mark.parametrize("case", BAD_DEPLOYS, ids=list(BAD_DEPLOYS))
def test_bad_rollout_settings_stop_the_deploy_before_any_host_is_contacted(tmp_path, case):
    assert_bad_rollout_settings_stop(tmp_path, "playbooks/rolling_deploy.yml", case)


@pytest.mark.parametrize("case", ["batch size over 100%", "unknown failure policy", "negative drain timeout",
                                  "app group renamed"])
def test_site_checks_the_rollout_settings_it_restarts_with_before_any_host_is_contacted(tmp_path, case):
    """site.yml restarts changed instances through the rollout (issue 33), so a bad rollout setting
    stops it first, as it stops a deploy."""
    assert_bad_rollout_settings_stop(tmp_path, "site.yml", case)


def test_a_deploy_limited_to_one_balancer_of_a_pair_stops_naming_the_other(tmp_path):
    """Each batch is drained in every balancer: a run that leaves one out would stop instances it still sends
    traffic to."""
    result = run(tmp_path, with_edits(PAIR), "playbooks/rolling_deploy.yml", "--limit", "lb1:app")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "UNREACHABLE" not in output, output[-3000:]
    assert "but this run leaves out lb2: run it with every host of [lb] (a --limit must include them all)" in output


def test_staging_checks_the_inventory_then_stops_when_the_hosts_do_not_answer(tmp_path):
    """stage_release.yml refuses a bad version before contacting any host, and tries every host before
    installing anything."""
    result = run(tmp_path, GOOD_INVENTORY, "playbooks/stage_release.yml", "-e", "app_version=banana")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "UNREACHABLE" not in output, output[-3000:]
    assert "app_version must name a release" in output, output[-3000:]

    result = run(tmp_path, GOOD_INVENTORY, "playbooks/stage_release.yml")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "5 host(s) of the inventory did not answer, so no host was changed" in output, output[-3000:]
    assert "Install the release beside the running one" not in output


def test_a_misspelt_variable_is_warned_about_naming_the_closest_and_the_run_goes_on(tmp_path):
    """Warn only: users keep their own variables beside ours. The run goes on to the hosts (here: none
    answers) with app_version as the inventory sets it."""
    result = run(tmp_path, changed(changed(GOOD_INVENTORY, f"{ALL}/app_verison", "1.2.0"), f"{APP1}/lb_http_prot", 8080))
    output = result.stdout + result.stderr
    assert "app_verison (on every host) is set but no role knows it, so it changes nothing: did you mean app_version?" \
        in output, output[-3000:]
    assert "lb_http_prot (on app1) is set but no role knows it" in output and "did you mean lb_http_port?" in output
    assert "5 host(s) of the inventory did not answer, so no host was changed" in output, output[-3000:]


def test_site_limited_to_one_balancer_of_a_pair_and_no_app_host_is_not_refused(tmp_path):
    """A --limit that reaches no app host restarts no instance: site.yml may converge one balancer of a pair (it goes
    on to the hosts, which do not answer here). With an app host in the --limit, leaving lb2 out is refused."""
    result = run(tmp_path, with_edits(PAIR), "site.yml", "--limit", "lb1")
    output = result.stdout + result.stderr
    assert "leaves out lb2" not in output, output[-3000:]
    assert "did not answer, so no host was changed: lb1" in output, output[-3000:]

    result = run(tmp_path, with_edits(PAIR), "site.yml", "--limit", "lb1:app1")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "but this run leaves out lb2: run it with every host of [lb] (a --limit must include them all)" in output
