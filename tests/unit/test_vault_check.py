"""vars_plugins/vault_check.py: what it says about a vault file that does not open (its run: the
tests/playbooks/test_production_path.py vault tests)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("vault_check_under_test", REPO / "vars_plugins" / "vault_check.py")
vault_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vault_check)


def test_the_vault_id_is_read_from_a_1_2_header_only():
    assert vault_check.vault_id_of(b"$ANSIBLE_VAULT;1.2;AES256;lab\n6162") == "lab"
    assert vault_check.vault_id_of(b"$ANSIBLE_VAULT;1.1;AES256\n6162") is None


def test_every_password_source_is_named_with_where_it_came_from():
    sources = vault_check.password_sources(
        {"vault_ids": ["prod@/etc/vault-prod"], "vault_password_files": ["/tmp/pw"], "ask_vault_pass": True},
        "/opt/lab-password", ["lab@/opt/lab-password"], {"ANSIBLE_VAULT_PASSWORD_FILE": "/opt/lab-password"})
    assert sources == ["--vault-id prod@/etc/vault-prod", "--vault-password-file /tmp/pw",
                       "--ask-vault-pass (the password typed)", "ANSIBLE_VAULT_PASSWORD_FILE=/opt/lab-password",
                       "vault_identity_list in ansible.cfg=lab@/opt/lab-password"]
    assert vault_check.password_sources({}, "/etc/pw", [], {}) == ["vault_password_file in ansible.cfg=/etc/pw"]
    assert vault_check.password_sources({}, None, [], {}) == []


def test_the_message_names_the_file_its_vault_id_and_the_way_on():
    message = vault_check.undecryptable_message("/inv/group_vars/all/vault.yml", "lab", ["--vault-password-file /x"],
                                                "Decryption failed.")
    assert message == ("/inv/group_vars/all/vault.yml (encrypted with vault id 'lab') cannot be decrypted: Decryption "
                       "failed. The password sources given: --vault-password-file /x. Check that one of them holds "
                       "this file's password. Nothing has been changed.")
    assert "No vault password was given: run with --ask-vault-pass" in vault_check.undecryptable_message(
        "/v.yml", None, [], "Attempting to decrypt but no vault secrets found.")
