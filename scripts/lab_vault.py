#!/usr/bin/env python3
"""The lab's vault, laid out as inventories/production.example lays out a real one.

The lab's secrets live in `group_vars/all/vault.yml`, encrypted with ansible-vault (vault id `lab`),
beside the settings in `group_vars/all/main.yml` that name them (`app_key: "{{ vault_app_key }}"`).
The password is made once, at random, and kept in `.cache/lab-vault-password` (mode 0600).

    lab_vault.py                 print the password, making it first if there is none: this file is
                                 an executable vault password file (the Makefile exports
                                 ANSIBLE_VAULT_PASSWORD_FILE=scripts/lab_vault.py for the lab's commands)
    lab_vault.py ensure [FILE]   make the vault file (default: the lab's) with new random secrets when it
                                 does not exist; check that an existing one opens, and add any secret
                                 it lacks
    lab_vault.py show NAME       print one secret, for example vault_app_admin_password

The password step uses the standard library only, since Ansible may run it with any python3; the vault
steps need ansible-core (the project's .venv).
"""

import os
import secrets
import string
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PASSWORD_FILE = REPO_ROOT / ".cache" / "lab-vault-password"
LAB_VAULT = REPO_ROOT / "inventories" / "lab" / "group_vars" / "all" / "vault.yml"
VAULT_ID = "lab"
# Each secret the lab's main.yml names, with its length: letters and digits only, so that no consumer
# (an env file, a URL, a Redis or PostgreSQL config) needs any quoting.
SECRETS = {
    "vault_app_key": 43,
    "vault_redis_requirepass": 32,
    "vault_postgresql_app_password": 32,
    "vault_app_admin_password": 20,
}
# Before the vault, the lab kept each secret in its own file here (ansible.builtin.password lookups): a
# lab made then keeps its secrets when the vault is first made.
OLD_SECRETS_DIR = REPO_ROOT / ".cache" / "lab-secrets"
ALPHABET = string.ascii_letters + string.digits


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path`, readable by this user only (mode 0600 from the start)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(data)


def new_secret(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def password(path: Path | None = None) -> str:
    """The lab's vault password, made (64 random characters, mode 0600) when there is none yet."""
    path = path or PASSWORD_FILE
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        text = ""
    if text:
        return text
    text = new_secret(64)
    write_private(path, (text + "\n").encode())
    return text


def old_secret(name: str, old_dir: Path | None) -> str | None:
    """The value a lab made before the vault kept for `name` (vault_app_key: .cache/lab-secrets/app_key)."""
    if old_dir is None:
        return None
    try:
        words = (old_dir / name.removeprefix("vault_")).read_text(encoding="utf-8").split()
    except OSError:
        return None
    return words[0] if words else None  # the password lookup appended " salt=..."


def missing_secrets(values: dict, old_dir: Path | None) -> dict[str, str]:
    """A value for every secret of SECRETS that `values` lacks: the old lab's, or a new random one."""
    return {name: old_secret(name, old_dir) or new_secret(length)
            for name, length in SECRETS.items() if not values.get(name)}


def vault_text(values: dict[str, str]) -> str:
    lines = ["---", "# The lab's secrets, made by scripts/lab_vault.py; open with",
             "# ansible-vault view --vault-password-file scripts/lab_vault.py inventories/lab/group_vars/all/vault.yml"]
    lines += [f"{name}: {value}" for name, value in sorted(values.items())]
    return "\n".join(lines) + "\n"


def _vault(password_file: Path | None):
    from ansible.parsing.vault import VaultLib, VaultSecret  # pylint: disable=import-outside-toplevel

    return VaultLib([(VAULT_ID, VaultSecret(password(password_file).encode()))])


def read_vault(path: Path | None = None, password_file: Path | None = None) -> dict[str, str]:
    """The secrets of a lab vault file (the lab's by default), decrypted."""
    path, password_file = path or LAB_VAULT, password_file or PASSWORD_FILE
    import yaml  # pylint: disable=import-outside-toplevel
    from ansible.errors import AnsibleError  # pylint: disable=import-outside-toplevel

    try:
        data = _vault(password_file).decrypt(path.read_bytes())
    except FileNotFoundError as error:
        raise SystemExit(f"{path} does not exist: make up (or scripts/lab_vault.py ensure) makes it") from error
    except AnsibleError as error:
        raise SystemExit(
            f"{path} cannot be decrypted with the lab's vault password in {password_file} ({error}). The password "
            f"was made again after the vault was: remove {path} and run make up, which makes new secrets and "
            "converges them (make down first if the lab runs)."
        ) from error
    return yaml.safe_load(data) or {}


def ensure(path: Path | None = None, password_file: Path | None = None) -> str:
    """Make the vault file (the lab's by default), or complete it; say what was done. The lab's own takes the
    secrets a lab made before the vault, where there are some."""
    path = path or LAB_VAULT
    old_dir = OLD_SECRETS_DIR if path == LAB_VAULT else None
    values = read_vault(path, password_file) if path.exists() else {}
    added = missing_secrets(values, old_dir)
    if not added:
        return f"{path}: every secret is there"
    write_private(path, _vault(password_file).encrypt(vault_text({**values, **added}), vault_id=VAULT_ID))
    return f"{path}: made {', '.join(sorted(added))}"


def main(argv: list[str]) -> int:
    if not argv:
        print(password())
        return 0
    if argv[0] == "ensure" and len(argv) <= 2:
        print(ensure(Path(argv[1]).resolve() if len(argv) == 2 else None))
        return 0
    if argv[0] == "show" and len(argv) == 2:
        values = read_vault()
        if argv[1] not in values:
            raise SystemExit(f"{LAB_VAULT} has no {argv[1]}; it has {', '.join(sorted(values))}")
        print(values[argv[1]])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
