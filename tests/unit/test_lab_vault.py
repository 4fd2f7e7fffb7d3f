"""scripts/lab_vault.py: the lab's vault, made, completed and opened with real ansible-vault."""

from __future__ import annotations

import importlib.util
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "lab_vault.py"
spec = importlib.util.spec_from_file_location("lab_vault_under_test", SCRIPT)
lab_vault = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lab_vault)
sys.path.insert(0, str(REPO / "molecule"))

import testlib  # noqa: E402


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The script's files moved under tmp_path."""
    moved = {"PASSWORD_FILE": tmp_path / "cache" / "lab-vault-password",
             "LAB_VAULT": tmp_path / "inventory" / "group_vars" / "all" / "vault.yml",
             "OLD_SECRETS_DIR": tmp_path / "cache" / "lab-secrets"}
    for name, path in moved.items():
        monkeypatch.setattr(lab_vault, name, path)
    return moved


def ansible_vault_view(vault: Path, password_file: Path) -> dict:
    completed = subprocess.run(["ansible-vault", "view", "--vault-password-file", str(password_file), str(vault)],
                               capture_output=True, text=True, check=True, timeout=60)
    return yaml.safe_load(completed.stdout)


def test_the_vault_is_made_encrypted_with_every_secret_and_opens_with_ansible_vault(paths):
    assert lab_vault.ensure().endswith("made " + ", ".join(sorted(lab_vault.SECRETS)))
    vault, password_file = paths["LAB_VAULT"], paths["PASSWORD_FILE"]
    assert vault.read_text().startswith("$ANSIBLE_VAULT;1.2;AES256;lab\n")
    assert stat.S_IMODE(vault.stat().st_mode) == stat.S_IMODE(password_file.stat().st_mode) == 0o600
    values = ansible_vault_view(vault, password_file)
    assert {name: len(value) for name, value in values.items()} == lab_vault.SECRETS
    assert all(re.fullmatch(r"[A-Za-z0-9]+", value) for value in values.values())
    # The script is itself the password file Ansible runs (ANSIBLE_VAULT_PASSWORD_FILE=scripts/lab_vault.py).
    assert os.access(SCRIPT, os.X_OK)
    assert lab_vault.read_vault() == values


def test_a_second_run_changes_nothing_and_a_missing_secret_is_added_alone(paths):
    lab_vault.ensure()
    first = lab_vault.read_vault()
    assert lab_vault.ensure().endswith("every secret is there")
    assert lab_vault.read_vault() == first
    vault_lib = lab_vault._vault(None)
    fewer = {name: value for name, value in first.items() if name != "vault_app_key"}
    paths["LAB_VAULT"].write_bytes(vault_lib.encrypt(lab_vault.vault_text(fewer), vault_id="lab"))
    assert lab_vault.ensure().endswith("made vault_app_key")
    again = lab_vault.read_vault()
    assert {name: value for name, value in again.items() if name != "vault_app_key"} == fewer
    assert len(again["vault_app_key"]) == 43


def test_a_lab_made_before_the_vault_keeps_its_secrets(paths):
    paths["OLD_SECRETS_DIR"].mkdir(parents=True)
    (paths["OLD_SECRETS_DIR"] / "app_admin_password").write_text("Kept0ldPassword salt=abcdefgh\n")
    lab_vault.ensure()
    assert lab_vault.read_vault()["vault_app_admin_password"] == "Kept0ldPassword"


def test_a_vault_whose_password_was_lost_is_named_with_its_password_file_and_the_way_out(paths):
    lab_vault.ensure()
    paths["PASSWORD_FILE"].unlink()  # the next call makes a new password
    with pytest.raises(SystemExit) as raised:
        lab_vault.ensure()
    message = str(raised.value)
    assert message.startswith(f"{paths['LAB_VAULT']} cannot be decrypted with the lab's vault password in "
                              f"{paths['PASSWORD_FILE']}")
    assert f"remove {paths['LAB_VAULT']} and run make up" in message


def test_the_stack_target_reads_a_group_vars_directory_with_its_vault_resolved(paths, monkeypatch):
    lab_vault.ensure()
    group_all = paths["LAB_VAULT"].parent
    (group_all / "main.yml").write_text('app_key: "{{ vault_app_key }}"\nlb_kind: nginx\n')
    (group_all / "notes.txt").write_text("not read: Ansible reads .yml, .yaml and .json only\n")
    monkeypatch.setattr(testlib, "lab_vault", lambda: lab_vault)
    variables = testlib.read_group_vars(str(group_all))
    assert variables["app_key"] == lab_vault.read_vault()["vault_app_key"]
    assert variables["lb_kind"] == "nginx"
    assert "vault_app_key" in variables


def test_the_lab_inventory_names_every_secret_the_vault_is_made_with():
    """Each secret of the lab's main.yml names a vault variable that lab_vault.ensure() makes."""
    settings = yaml.safe_load((REPO / "inventories" / "lab" / "group_vars" / "all" / "main.yml").read_text())
    named = {testlib.VAULT_REFERENCE.match(value)["name"] for value in settings.values()
             if isinstance(value, str) and testlib.VAULT_REFERENCE.match(value)}
    assert named == set(lab_vault.SECRETS)
    assert {name: settings[name] for name in ("app_key", "redis_requirepass", "postgresql_app_password",
                                              "app_admin_password")} == {
        name: "{{ vault_%s }}" % name for name in ("app_key", "redis_requirepass", "postgresql_app_password",
                                                   "app_admin_password")}
