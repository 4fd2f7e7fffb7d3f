"""filter_plugins/systems.py: the system a host's /etc/os-release names."""

from __future__ import annotations

import base64

from systems import os_release_system

BOOKWORM = '''PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
'''
TRIXIE = BOOKWORM.replace("12", "13").replace("bookworm", "trixie")
UBUNTU = 'NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\n'


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_each_system_is_named_as_the_roles_name_their_vars_files():
    assert os_release_system(encoded(BOOKWORM)) == "Debian-12"
    assert os_release_system(encoded(TRIXIE)) == "Debian-13"
    assert os_release_system(encoded(UBUNTU)) == "Ubuntu-24"
    assert os_release_system(UBUNTU, encoded=False) == "Ubuntu-24"


def test_a_file_without_the_fields_names_what_it_lacks():
    assert os_release_system(encoded("ID=debian\n")) == "unknown-unknown"
    # Debian testing (sid) gives no VERSION_ID.
    assert os_release_system(encoded('NAME="Debian GNU/Linux"\nID=debian\n')) == "Debian-unknown"
