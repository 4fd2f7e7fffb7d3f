"""Specification of the filters that find role-prefixed variables no role knows."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

import inventory_names
from inventory_names import group_roles, shadowed_vars_files, spec_option_names, unknown_role_variables

REPO_ROOT = Path(__file__).resolve().parents[2]
KNOWN = ["app_version", "app_instance_ports", "lb_kind", "lb_http_port", "rollout_gate_timeout", "redis_port"]


def test_a_misspelt_name_is_named_with_the_closest_known_one():
    assert unknown_role_variables({"app1": ["app_verison", "app_version"]}, KNOWN) == [
        "app_verison (on app1) is set but no role knows it, so it changes nothing: did you mean app_version?"]


def test_the_closest_name_is_looked_for_in_the_same_role_first():
    [line] = unknown_role_variables({"lb1": ["lb_http_prot"]}, KNOWN)
    assert line.endswith("did you mean lb_http_port?")


def test_a_name_set_on_every_host_says_so_and_others_list_their_hosts():
    lines = unknown_role_variables({"a": ["rollout_gate_timeuot"], "b": ["rollout_gate_timeuot", "app_portz"]}, KNOWN)
    assert lines[0].startswith("app_portz (on b) is set")
    assert lines[1].startswith("rollout_gate_timeuot (on every host) is set")


def test_names_without_a_role_prefix_and_known_names_are_left_alone():
    """Users keep their own variables beside ours; the prefixes are those of the known names."""
    assert unknown_role_variables({"h": ["my_app_setting", "ansible_host", "application", "lb_kind",
                                         "postgresql_port"]}, KNOWN) == []


def test_a_name_far_from_every_known_one_gets_no_guess():
    [line] = unknown_role_variables({"h": ["redis_something_else_entirely"]}, KNOWN)
    assert line.endswith("no role has a variable of a similar name.")


def test_the_option_names_of_every_entry_point_are_known():
    specs = [yaml.safe_load(path.read_text()) for path in sorted((REPO_ROOT / "roles").glob("*/meta/argument_specs.yml"))]
    names = spec_option_names(specs)
    for name in ("app_version", "app_converge_version", "lb_kind", "rollout_gate_timeout", "redis_port",
                 "postgresql_app_password", "app_activate_host"):
        assert name in names
    assert names == sorted(set(names))


def test_every_default_of_every_role_is_in_a_spec():
    """Otherwise setting a documented default in the inventory would be warned about."""
    specs = [yaml.safe_load(path.read_text()) for path in sorted((REPO_ROOT / "roles").glob("*/meta/argument_specs.yml"))]
    names = set(spec_option_names(specs))
    defaults = set()
    for path in (REPO_ROOT / "roles").glob("*/defaults/**/*.yml"):
        defaults.update(yaml.safe_load(path.read_text()) or {})
    assert sorted(defaults - names) == []


@pytest.mark.parametrize("bad", [["not a spec"], [{"argument_specs": "x"}]])
def test_spec_option_names_refuses_what_is_not_a_spec(bad):
    with pytest.raises(AnsibleFilterError):
        spec_option_names(bad)


def test_unknown_role_variables_refuses_a_list():
    with pytest.raises(AnsibleFilterError):
        unknown_role_variables(["app_x"], KNOWN)


def test_the_filters_are_registered():
    filters = inventory_names.FilterModule().filters()
    assert filters["unknown_role_variables"] is unknown_role_variables
    assert filters["spec_option_names"] is spec_option_names


# ---- group_roles ----------------------------------------------------------------------------------


def test_the_group_to_role_map_is_read_from_site_yml():
    plays = yaml.safe_load((REPO_ROOT / "site.yml").read_text())
    assert group_roles(plays) == {"db": "postgresql", "redis": "redis", "app": "app", "lb": "lb"}


def test_plays_on_every_host_or_with_several_roles_give_no_group():
    plays = [{"hosts": "all", "roles": [{"role": "common"}]}, {"hosts": "web", "roles": ["a", "b"]},
             {"import_playbook": "x.yml"}, {"hosts": "cache", "roles": ["redis"]}]
    assert group_roles(plays) == {"cache": "redis"}


def test_group_roles_wants_plays():
    with pytest.raises(AnsibleFilterError, match="group_roles"):
        group_roles("site.yml")


def entry(path: str, isdir: bool = False) -> dict:
    return {"path": path, "isdir": isdir}


def test_a_vars_file_beside_a_directory_of_its_name_is_named_as_never_read():
    problems = shadowed_vars_files([entry("/inv/group_vars/all.yml"), entry("/inv/group_vars/all", isdir=True),
                                    entry("/inv/group_vars/app.yml"), entry("/inv/host_vars/lb1", isdir=True),
                                    entry("/inv/host_vars/lb1.json")])
    assert problems == [
        "/inv/group_vars/all.yml is never read: Ansible reads only the files in /inv/group_vars/all/ when that "
        "directory exists. Move it into the directory, for example as /inv/group_vars/all/main.yml, beside the all "
        "files already there",
        "/inv/host_vars/lb1.json is never read: Ansible reads only the files in /inv/host_vars/lb1/ when that "
        "directory exists. Move it into the directory, for example as /inv/host_vars/lb1/main.json, beside the lb1 "
        "files already there"]


def test_files_and_directories_of_different_names_are_all_read():
    assert shadowed_vars_files([entry("/inv/group_vars/all", isdir=True), entry("/inv/group_vars/app.yml"),
                                entry("/inv/group_vars/all.txt"), entry("/inv/group_vars/db.yml.example")]) == []


def test_shadowed_vars_files_wants_a_list_of_entries():
    with pytest.raises(AnsibleFilterError, match="expected the files find returned"):
        shadowed_vars_files("/inv/group_vars")
