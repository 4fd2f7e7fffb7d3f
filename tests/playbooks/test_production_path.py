"""The production path as the example inventory lays it out: a deploy user with sudo, group_vars/all/ as
a directory with a vault file, your own certificate. Hosts are TEST-NET addresses over SSH that never
answer, so an inventory that passes every check stops at "did not answer", before any host changes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from test_check_inventory import GOOD_INVENTORY, run

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "inventories" / "production.example"
VAULT = {"vault_app_key": "0123456789abcdef0123456789abcdef", "vault_redis_requirepass": "a-redis-password",
         "vault_postgresql_app_password": "a-database-password", "vault_app_admin_password": "an-admin-password"}


def without_vault_settings() -> dict[str, str]:
    """This environment without a vault password of its own (make exports the lab's), as an operator's."""
    return {name: value for name, value in os.environ.items() if not name.startswith("ANSIBLE_VAULT")}


def example_inventory(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the example inventory with its vault file made and encrypted as its comments say."""
    inventory = tmp_path / "production"
    shutil.copytree(EXAMPLE, inventory)
    (inventory / "group_vars" / "all" / "vault.yml").write_text(yaml.safe_dump(VAULT))
    password_file = tmp_path / "vault-password"
    password_file.write_text("a-vault-password\n")
    subprocess.run(["ansible-vault", "encrypt", "--vault-password-file", str(password_file),
                    str(inventory / "group_vars" / "all" / "vault.yml")], check=True, capture_output=True,
                   env=without_vault_settings())
    return inventory, password_file


def own_certificate(tmp_path: Path) -> list[str]:
    """Extra vars pointing the example's certificate paths at files that exist (read only on the lb host)."""
    arguments = []
    for name in ("certificate", "private_key"):
        path = tmp_path / f"lb.{name}.pem"
        path.write_text("not read before the hosts answer\n")
        arguments += ["-e", f"lb_tls_{name}_src={path}"]
    return arguments


def run_example(inventory: Path, password_file: Path, *extra: str) -> subprocess.CompletedProcess:
    environment = {**without_vault_settings(), "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}
    return subprocess.run(["ansible-playbook", "-i", str(inventory), "site.yml", "--vault-password-file",
                           str(password_file), "-e", "ansible_ssh_common_args='-o ConnectTimeout=2'", *extra],
                          cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)


def test_the_example_inventory_with_its_vault_passes_every_check_and_stops_at_the_silent_hosts(tmp_path):
    """Its settings and its vault file are both read (a group_vars/all.yml beside group_vars/all/ would not
    be), and the deploy user is the example's, without become on the controller."""
    inventory, password_file = example_inventory(tmp_path)
    listed = subprocess.run(["ansible-inventory", "-i", str(inventory), "--vault-password-file", str(password_file),
                             "--host", "lb1.example.com"], cwd=REPO, capture_output=True, text=True, check=True,
                            env=without_vault_settings())
    variables = yaml.safe_load(listed.stdout)
    assert variables["lb_kind"] == "nginx"
    assert variables["vault_app_key"] == VAULT["vault_app_key"]
    assert variables["ansible_user"] == "deploy"
    assert "ansible_become" not in variables
    result = run_example(inventory, password_file, *own_certificate(tmp_path))
    output = result.stdout + result.stderr
    assert "5 host(s) of the inventory did not answer, so no host was changed" in output, output[-3000:]


def test_production_without_a_certificate_is_refused_rather_than_served_self_signed(tmp_path):
    inventory, password_file = example_inventory(tmp_path)
    output = "".join(run_example(inventory, password_file).stdout)
    assert "lb_tls_certificate_src is /etc/rollgate/tls/lb.example.com.crt, which is not a file on the controller" in output
    assert "did not answer" not in output


def test_a_vars_file_beside_a_directory_of_its_name_stops_the_run_naming_it(tmp_path):
    """The layout the example once suggested: group_vars/all.yml, then group_vars/all/vault.yml beside it."""
    (tmp_path / "group_vars" / "all").mkdir(parents=True)
    (tmp_path / "group_vars" / "all.yml").write_text("lb_kind: haproxy\n")
    (tmp_path / "group_vars" / "all" / "vault.yml").write_text("vault_app_key: x\n")
    result = run(tmp_path, GOOD_INVENTORY)
    output = result.stdout + result.stderr
    assert (f"{tmp_path}/group_vars/all.yml is never read: Ansible reads only the files in {tmp_path}/group_vars/all/"
            " when that directory exists. Move it into the directory") in output, output[-3000:]
    assert "did not answer" not in output


def test_become_on_the_whole_inventory_stops_the_run_naming_ansible_become(tmp_path):
    """ansible_become on all reaches the controller's tasks, outranking their become: false."""
    inventory = {"all": {**GOOD_INVENTORY["all"], "vars": {**GOOD_INVENTORY["all"]["vars"], "ansible_become": True}}}
    result = run(tmp_path, inventory)
    output = result.stdout + result.stderr
    assert "ansible_become is true for the controller too" in output, output[-3000:]
    assert "Remove ansible_become from the inventory" in output
    assert "did not answer" not in output


def test_become_on_the_host_groups_only_is_fine(tmp_path):
    inventory = {"all": {**GOOD_INVENTORY["all"], "children": {
        name: {**group, "vars": {"ansible_become": True}} for name, group in GOOD_INVENTORY["all"]["children"].items()}}}
    output = "".join(run(tmp_path, inventory).stdout)
    assert "ansible_become is true for the controller" not in output
    assert "5 host(s) of the inventory did not answer" in output, output[-3000:]


def test_ssh_host_keys_are_checked():
    """ansible.cfg no longer turns host key checking off for everyone; the lab records its hosts' keys."""
    dump = subprocess.run(["ansible-config", "dump", "--only-changed"], cwd=REPO, capture_output=True, text=True,
                          check=True)
    assert "HOST_KEY_CHECKING" not in dump.stdout


def run_site_without_lab_password(inventory: Path, *arguments: str, **environment: str) -> subprocess.CompletedProcess:
    """site.yml with only the vault password sources given here."""
    return subprocess.run(["ansible-playbook", "-i", str(inventory), "site.yml", *arguments], cwd=REPO,
                          env={**without_vault_settings(), **environment}, capture_output=True, text=True, timeout=300)


def test_a_vault_that_cannot_be_decrypted_is_named_with_the_password_source_to_check(tmp_path):
    inventory, _ = example_inventory(tmp_path)
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    vault = inventory / "group_vars" / "all" / "vault.yml"
    result = run_site_without_lab_password(inventory, "--vault-password-file", str(wrong))
    assert result.returncode != 0
    assert (f"{vault} (encrypted) cannot be decrypted: Decryption failed (no vault secrets were found that could "
            f"decrypt). The password sources given: --vault-password-file {wrong}. Check that one of them holds "
            "this file's password. Nothing has been changed.") in result.stdout + result.stderr
    from_environment = run_site_without_lab_password(inventory, ANSIBLE_VAULT_PASSWORD_FILE=str(wrong))
    assert f"The password sources given: ANSIBLE_VAULT_PASSWORD_FILE={wrong}." in from_environment.stderr
    none_given = run_site_without_lab_password(inventory)
    assert f"{vault} (encrypted) cannot be decrypted: Attempting to decrypt but no vault secrets found. No vault " \
           "password was given: run with --ask-vault-pass" in none_given.stderr


def test_without_the_vault_check_ansible_names_neither_the_file_nor_the_password(tmp_path):
    """The negative control of the test above: Ansible's own message, with vault_check left out."""
    inventory, _ = example_inventory(tmp_path)
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    result = run_site_without_lab_password(inventory, "--vault-password-file", str(wrong),
                                           ANSIBLE_VARS_ENABLED="host_group_vars")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Decryption failed (no vault secrets were found that could decrypt)" in output
    assert "vault.yml" not in output and str(wrong) not in output
