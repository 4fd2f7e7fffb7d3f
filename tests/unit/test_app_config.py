"""The app's own config validator, run on the controller: the script that runs it for every host, the
filters that name each problem by its inventory variable, and the app role's specs against the
validator's table, so that the two cannot drift."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from app_config import app_config_problems, env_file_changes, env_variable_names

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "roles/app/files/check_config.py"
SOURCE = REPO / "app/src"
RAW_ENVIRONMENT = yaml.safe_load((REPO / "roles/app/vars/main.yml").read_text())["__app_environment"]
SPEC = yaml.safe_load((REPO / "roles/app/meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
NAMES = env_variable_names(RAW_ENVIRONMENT)

sys.path.insert(0, str(SOURCE))
from inventory_service import config  # noqa: E402 - the service's source, as the script imports it

GOOD_ENV = {"APP_KEY": "0123456789abcdef0123456789abcdef", "DB_DATABASE": "inventory", "DB_USERNAME": "inventory",
            "DB_PASSWORD": "secret"}


def check(import_path: Path, hosts: dict) -> dict:
    result = subprocess.run([sys.executable, str(SCRIPT), str(import_path)], input=json.dumps(hosts),
                            capture_output=True, text=True, check=True, timeout=60)
    return json.loads(result.stdout)


# ---- the script -----------------------------------------------------------------------------------


def test_the_script_gives_each_host_its_problems_and_an_empty_list_when_valid():
    problems = check(SOURCE, {"app1": {"port": 8000, "env": GOOD_ENV},
                              "app2": {"port": 8000, "env": {**GOOD_ENV, "DB_POOL_MIN": "5", "DB_POOL_MAX": "1",
                                                            "CACHE_TTL": "0"}}})
    assert problems["app1"] == []
    assert problems["app2"] == ["DB_POOL_MAX must be at least DB_POOL_MIN (5), got 1",
                                "CACHE_TTL must be an integer from 1 to 86400, got '0'"]


def test_the_script_imports_the_service_from_a_zip_as_from_a_release_wheel(tmp_path):
    wheel = tmp_path / "rollgate_inventory-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path in (SOURCE / "inventory_service").glob("*.py"):
            archive.write(path, f"inventory_service/{path.name}")
    problems = check(wheel, {"app1": {"port": 8000, "env": {**GOOD_ENV, "APP_KEY": "short"}}})
    assert problems == {"app1": ["APP_KEY is 5 characters long, fewer than 32: it must be 'base64:' followed by 32 "
                                 "base64-encoded bytes, or at least 32 characters"]}


# ---- the names ------------------------------------------------------------------------------------


def test_each_environment_variable_is_named_by_the_role_variable_it_comes_from():
    assert NAMES["DB_POOL_MAX"] == "app_db_pool_max"
    assert NAMES["HEALTH_ALLOWED_IPS"] == "app_health_allowed_networks"
    assert NAMES["ADMIN_USERNAME"] == "app_admin_username"
    assert NAMES["SESSION_COOKIE_SECURE"] == "app_session_cookie_secure"
    # uvicorn reads FORWARDED_ALLOW_IPS, rendered from the balancers' addresses only; the service does not.
    # FLEET_INSTANCES comes from the inventory's app group.
    assert set(RAW_ENVIRONMENT) - set(NAMES) == {"FORWARDED_ALLOW_IPS", "FLEET_INSTANCES"}


def test_a_problem_names_its_variable_then_the_others_it_mentions():
    lines = app_config_problems({"app1": ["DB_POOL_MAX must be at least DB_POOL_MIN (5), got 1"], "app2": []}, NAMES)
    assert lines == ["app1: app_db_pool_max (DB_POOL_MAX) must be at least app_db_pool_min (5), got 1."]


def test_a_variable_set_through_app_extra_env_is_named_as_such():
    lines = app_config_problems({"app1": ["APP_FAIL_READINESS must be true or false, got 'maybe'"]}, NAMES,
                                {"app1": ["APP_FAIL_READINESS"]})
    assert lines == ["app1: app_extra_env's APP_FAIL_READINESS (APP_FAIL_READINESS) must be true or false, got 'maybe'."]


def test_bad_input_to_the_filters_is_refused():
    with pytest.raises(AnsibleFilterError, match="env_variable_names"):
        env_variable_names(["APP_KEY"])
    with pytest.raises(AnsibleFilterError, match="app_config_problems"):
        app_config_problems(["problem"], NAMES)


# ---- the specs against the validator --------------------------------------------------------------


@pytest.mark.parametrize("env_name", sorted(config.RANGES))
def test_the_spec_of_each_number_gives_the_validators_range(env_name):
    low, high = config.RANGES[env_name]
    description = SPEC[NAMES[env_name]]["description"]
    assert f"({low}-{high}" in description, (NAMES[env_name], description)


@pytest.mark.parametrize(("env_name", "allowed"), [("APP_ENV", config.APP_ENVIRONMENTS),
                                                   ("SESSION_DRIVER", config.SESSION_DRIVERS),
                                                   ("DB_SSLMODE", config.DB_SSLMODES),
                                                   ("LOG_LEVEL", config.LOG_LEVELS)])
def test_the_spec_of_each_choice_gives_the_validators_choices(env_name, allowed):
    assert SPEC[NAMES[env_name]]["choices"] == list(allowed)


# env_file_changes: the diff of a config that holds secrets, with none of them in it.
OLD_ENV = 'APP_ENV="production"\nDB_POOL_MAX="10"\nDB_PASSWORD="s3cret"\nREDIS_URL="redis://:s3cret@redis1:6379/0"\n' \
          'CACHE_TTL="300"\n'


def test_env_file_changes_shows_each_changed_setting_with_both_values_and_its_variable():
    new = OLD_ENV.replace('DB_POOL_MAX="10"', 'DB_POOL_MAX="12"')
    assert env_file_changes(OLD_ENV, new, ["s3cret"], NAMES) == ['DB_POOL_MAX (app_db_pool_max): "10" -> "12"']


def test_env_file_changes_never_shows_a_secret_alone_or_inside_a_url():
    new = OLD_ENV.replace("s3cret", "n3w-secret")
    lines = env_file_changes(OLD_ENV, new, ["s3cret", "n3w-secret"])
    assert lines == ["DB_PASSWORD: changed (a secret, not shown)", "REDIS_URL: changed (a secret, not shown)"]
    assert not any("s3cret" in line or "n3w-secret" in line for line in lines)


def test_env_file_changes_names_added_and_removed_settings_and_reads_escapes():
    new = OLD_ENV.replace('CACHE_TTL="300"\n', '') + 'APP_GREETING="say \\"hi\\" for \\$5"\n'
    assert env_file_changes(OLD_ENV, new, ["s3cret"]) == ['APP_GREETING: added, "say \\"hi\\" for $5"',
                                                          'CACHE_TTL: removed, was "300"']


def test_env_file_changes_is_empty_for_the_same_settings():
    assert env_file_changes(OLD_ENV, "# a comment\n" + OLD_ENV, ["s3cret"]) == []
