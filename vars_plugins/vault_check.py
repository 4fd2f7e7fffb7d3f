"""A vars file that cannot be decrypted, named with the password sources to check.

Ansible stops on such a file with "Decryption failed (no vault secrets were found that could decrypt)"
and neither the file nor the password it tried. This plugin runs before host_group_vars (ansible.cfg:
vars_plugins_enabled = vault_check, host_group_vars), opens each vault-encrypted file of group_vars/ and
host_vars/ the way host_group_vars will (the loader caches it, so nothing is decrypted twice), and when
one does not open, stops with its path, its vault id, and every password source given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from ansible import constants as C
from ansible import context
from ansible.errors import AnsibleError
from ansible.inventory.group import InventoryObjectType
from ansible.parsing.vault import AnsibleVaultError
from ansible.plugins.vars import BaseVarsPlugin
from ansible.utils.path import basedir

DOCUMENTATION = """
    name: vault_check
    short_description: Names a vars file that cannot be decrypted, and the password sources to check
    description:
        - Opens every vault-encrypted file in group_vars/ and host_vars/ before host_group_vars loads it.
        - A file that cannot be decrypted stops the run with its path, its vault id and the password sources.
        - Enable it before host_group_vars in vars_plugins_enabled.
"""

VAULT_HEADER = b"$ANSIBLE_VAULT;"
# Ansible asks for every host's variables at every task: each entity's directory is looked at once, and each
# file opened once, per run (host_group_vars keeps the same caches).
LOOKED_AT: set[str] = set()
CHECKED: set[str] = set()
BASES: dict[str, str] = {}


def vault_id_of(header: bytes) -> str | None:
    """The vault id a file was encrypted with: the fourth field of a 1.2 header, else None."""
    fields = header.split(b"\n", 1)[0].strip().split(b";")
    return fields[3].decode("utf-8", "replace") if len(fields) > 3 and fields[3] else None


def password_sources(cli_args: Mapping, default_password_file: str | None, default_identities: Sequence[str],
                     environment: Mapping[str, str]) -> list[str]:
    """Each password source Ansible was given, saying where it came from."""
    sources = [f"--vault-id {vault_id}" for vault_id in cli_args.get("vault_ids") or ()]
    sources += [f"--vault-password-file {path}" for path in cli_args.get("vault_password_files") or ()]
    if cli_args.get("ask_vault_pass"):
        sources.append("--ask-vault-pass (the password typed)")
    if default_password_file:
        where = "ANSIBLE_VAULT_PASSWORD_FILE" if environment.get("ANSIBLE_VAULT_PASSWORD_FILE") else \
            "vault_password_file in ansible.cfg"
        sources.append(f"{where}={default_password_file}")
    if default_identities:
        where = "ANSIBLE_VAULT_IDENTITY_LIST" if environment.get("ANSIBLE_VAULT_IDENTITY_LIST") else \
            "vault_identity_list in ansible.cfg"
        sources.append(f"{where}={','.join(default_identities)}")
    return sources


def undecryptable_message(path: str, vault_id: str | None, sources: Sequence[str], error: str) -> str:
    encrypted = f"encrypted with vault id '{vault_id}'" if vault_id else "encrypted"
    if sources:
        given = "The password sources given: " + "; ".join(sources) + \
            ". Check that one of them holds this file's password"
    else:
        given = ("No vault password was given: run with --ask-vault-pass, --vault-password-file FILE or "
                 "--vault-id LABEL@FILE, or set ANSIBLE_VAULT_PASSWORD_FILE")
    return f"{path} ({encrypted}) cannot be decrypted: {error} {given}. Nothing has been changed."


class VarsModule(BaseVarsPlugin):
    REQUIRES_ENABLED = True
    is_stateless = True

    def get_vars(self, loader, path, entities, cache=True):
        if not isinstance(entities, list):
            entities = [entities]
        base = BASES.get(path) or BASES.setdefault(path, os.path.realpath(basedir(path)))
        for entity in entities:
            if entity.name.startswith(os.path.sep):
                continue
            subdir = "host_vars" if entity.base_type is InventoryObjectType.HOST else "group_vars"
            directory = os.path.join(base, subdir)
            key = f"{entity.name}.{directory}"
            if key in LOOKED_AT:
                continue
            LOOKED_AT.add(key)
            if not os.path.isdir(directory):
                continue
            for found in loader.find_vars_files(directory, entity.name):
                if found not in CHECKED:
                    self._check(loader, found)
                    CHECKED.add(found)
        return {}

    @staticmethod
    def _check(loader, found: str) -> None:
        with open(found, "rb") as stream:
            header = stream.read(200)
        if not header.startswith(VAULT_HEADER):
            return
        try:
            loader.load_from_file(found, cache="all", unsafe=True, trusted_as_template=True)
        except AnsibleVaultError as error:
            sources = password_sources(context.CLIARGS, C.DEFAULT_VAULT_PASSWORD_FILE,
                                       C.DEFAULT_VAULT_IDENTITY_LIST or [], os.environ)
            raise AnsibleError(undecryptable_message(found, vault_id_of(header), sources, error.message)) from None
