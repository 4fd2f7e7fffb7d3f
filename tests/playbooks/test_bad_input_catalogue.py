"""The rest of the bad input catalogue, on the controller only: the make targets, the standalone
balancer generator, the health_gate module's options and the filters' inputs. Each bad input fails with
a message that names the variable (or option) and says the fix, before any host is contacted.
The inventory ones are in test_check_inventory.py."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from test_check_inventory import GOOD_INVENTORY, changed

REPO = Path(__file__).resolve().parents[2]


def environment(tmp_path: Path) -> dict:
    return {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / "facts"), "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
            "ANSIBLE_NOCOLOR": "1"}


def run(tmp_path: Path, *command: str) -> tuple[int, str]:
    result = subprocess.run(list(command), cwd=REPO, env=environment(tmp_path), capture_output=True, text=True,
                            timeout=300)
    return result.returncode, result.stdout + result.stderr


def inventory_file(tmp_path: Path, inventory: dict) -> str:
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory))
    return str(path)


# -- make targets -------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["deploy", "stage"])
def test_make_deploy_or_stage_without_version_says_how_to_give_it(tmp_path, target):
    code, output = run(tmp_path, "make", "-s", target, f"INVENTORY={inventory_file(tmp_path, GOOD_INVENTORY)}")
    assert code != 0
    assert f"make {target} needs the version to {target}: make {target} VERSION=1.1.0" in output
    assert "ansible-playbook" not in output


@pytest.mark.parametrize("app_hosts", ["0", "many", "201"])
def test_make_up_with_a_bad_lab_size_stops_before_the_lab_changes(tmp_path, app_hosts):
    size_file = REPO / ".cache" / "lab-app-hosts"
    size_before = size_file.read_text() if size_file.exists() else None
    code, output = run(tmp_path, "make", "-s", "lab", f"APP_HOSTS={app_hosts}")
    assert code != 0
    assert f"APP_HOSTS (from ROLLGATE_APP_HOSTS) must be a whole number from 1 to 200, got '{app_hosts}'" in output
    assert "run make up APP_HOSTS=N" in output
    assert "ansible-playbook" not in output, output[-2000:]
    assert (size_file.read_text() if size_file.exists() else None) == size_before


def kept(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def test_make_up_with_an_unknown_balancer_stops_before_the_lab_changes(tmp_path):
    kind_file = REPO / ".cache" / "lab-lb-kind"
    before = kept(kind_file)
    code, output = run(tmp_path, "make", "-s", "lab", "LB_KIND=squid")
    assert code != 0
    assert "balancer kind (from ROLLGATE_LB_KIND) must be one of apache, haproxy, nginx, got 'squid'" in output
    assert "run make up LB_KIND=<one of them>" in output
    assert "ansible-playbook" not in output, output[-2000:]
    assert kept(kind_file) == before


@pytest.mark.parametrize(("arguments", "fragments"), [
    (["KIND=traefik"], ["KIND='traefik' is not a balancer rollgate knows: choose one of apache, haproxy, nginx"]),
    (["TESTS=test_rollout.py"], ["TESTS names 'test_rollout.py', which is not a stack test: use one of test_bad_input.py"]),
    # A lab size whose hosts were never made stands for a lab that is not up, whether or not one runs here.
    (["KIND=haproxy", "ROLLGATE_APP_HOSTS=200"], ["make lab-test needs the running lab", "app200 (absent)",
                                                  "Run make up first."]),
], ids=["unknown kind", "not a stack test", "no running lab"])
def test_make_lab_test_with_bad_input_changes_nothing(tmp_path, arguments, fragments):
    kind_file = REPO / ".cache" / "lab-lb-kind"
    before = kept(kind_file)
    environment_vars = [argument for argument in arguments if argument.startswith("ROLLGATE_")]
    make_vars = [argument for argument in arguments if argument not in environment_vars]
    code, output = run(tmp_path, "env", *environment_vars, "make", "-s", "lab-test", *make_vars)
    assert code != 0
    for fragment in fragments:
        assert fragment in output, (fragment, output[-2000:])
    assert "switching" not in output and "ansible-playbook" not in output, output[-2000:]
    assert kept(kind_file) == before


@pytest.mark.parametrize(
    ("version", "fragments"),
    [("9.9.9", ["app_version 9.9.9 does not exist on the controller",
                "ansible-playbook playbooks/build_release.yml -e app_version=9.9.9"]),
     ("latest", ["app_version must name a release as a quoted, normalised PEP 440 version", 'got \\"latest\\"'])],
    ids=["a version that does not exist", "a version that is not PEP 440"],
)
def test_make_deploy_of_a_bad_version_stops_before_any_host_is_contacted(tmp_path, version, fragments):
    """Production inventories deploy prebuilt wheelhouses (app_build_from_source: false)."""
    inventory = changed(GOOD_INVENTORY, "all/vars/app_build_from_source", False)
    code, output = run(tmp_path, "make", "-s", "deploy", f"VERSION={version}",
                       f"INVENTORY={inventory_file(tmp_path, inventory)}")
    assert code != 0
    assert "UNREACHABLE" not in output, output[-3000:]
    for fragment in fragments:
        assert fragment in output, (fragment, output[-3000:])


# -- the standalone balancer generator ------------------------------------------------------------------

def generate(tmp_path: Path, inventory: str, kind: str) -> tuple[int, str]:
    return run(tmp_path, "ansible-playbook", "-i", inventory, "playbooks/generate_lb_config.yml",
               "-e", f"lb_kind={kind}", "-e", f"lb_output_dir={tmp_path}/out")


def test_the_generator_refuses_an_unknown_kind_naming_lb_kind_and_the_choices(tmp_path):
    code, output = generate(tmp_path, inventory_file(tmp_path, GOOD_INVENTORY), "traefik")
    assert code != 0
    assert "lb_kind must be one of: nginx, haproxy, apache, got: traefik" in output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [("all/children/app/hosts", {}, "the app group is empty: add the application servers under [app]"),
     ("all/children/app/hosts/app1/ansible_host", "192.0.2.12",
      "both put an instance on 192.0.2.12:8000 (address from ansible_host and ansible_host): set app_address")],
    ids=["no app hosts", "duplicate address:port"],
)
def test_the_generator_refuses_a_bad_inventory_before_writing(tmp_path, path, value, fragment):
    code, output = generate(tmp_path, inventory_file(tmp_path, changed(GOOD_INVENTORY, path, value)), "haproxy")
    assert code != 0
    assert fragment in output, output[-3000:]
    assert not (tmp_path / "out" / "haproxy" / "haproxy.cfg").exists()


# -- the health_gate module's options ----------------------------------------------------------------

@pytest.mark.parametrize(
    ("options", "fragment"),
    [({"url": "localhost:8000/health/readiness"}, "url must be an http:// or https:// URL with a host"),
     ({"url": "http://127.0.0.1:9/", "successes": 0}, "successes must be at least 1, got 0"),
     ({"url": "http://127.0.0.1:9/", "timeout": 0}, "timeout must be a number of seconds greater than 0"),
     ({"url": "http://127.0.0.1:9/", "expect_status": [42]},
      "expect_status must hold HTTP statuses between 100 and 599, got 42"),
     ({"expect_json": {"status": "ready"}}, "one of the following is required: url, urls"),
     ({"urls": {"app1_8000": "10.0.0.1:8000/health/readiness"}},
      "urls['app1_8000'] must be an http:// or https:// URL with a host")],
    ids=["url without a scheme", "successes 0", "timeout 0", "status out of range", "no url", "urls entry without a scheme"],
)
def test_health_gate_refuses_bad_options_naming_the_option(tmp_path, options, fragment):
    code, output = run(tmp_path, "ansible", "localhost", "-m", "health_gate", "-a", json.dumps(options))
    assert code != 0
    assert fragment in output, output[-2000:]
    assert "Traceback" not in output


# -- filter inputs -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("expression", "fragment"),
    [("{'a': 1} | upstream_weights('varnish')", "unknown balancer 'varnish': expected one of apache, haproxy, nginx"),
     ("{'a': 1, 'b': -2} | upstream_weights('nginx')", "capacity of backend 'b' must be a finite number >= 0, got -2"),
     ("{'a': 0, 'b': 0} | upstream_weights('nginx')", "give at least one a positive capacity"),
     ("-5 | slow_start_steps(4)", "rollout_slow_start must be")],
    ids=["unknown balancer", "negative capacity", "every capacity 0", "negative slow start"],
)
def test_a_filter_refuses_bad_input_naming_it(tmp_path, expression, fragment):
    code, output = run(tmp_path, "ansible", "localhost", "-m", "ansible.builtin.debug",
                       "-a", f"msg={{{{ {expression} }}}}")
    assert code != 0
    assert fragment in output, output[-2000:]
