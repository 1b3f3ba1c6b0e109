"""The one check of every user-supplied name that becomes part of a path in a run directory.

Suite names, prompt-set names, method and metric labels and prompt ids become folder and file
names (``RUN/images/<method>/<set>/<id>-<index>.png``, ``RUN/scores/<metric>/``). A safe name
is 1 to 120 characters of letters, digits and ``_.+-``, starting with a letter or digit: no
separator, no ``..``, no hidden file, nothing a filesystem reads specially.
"""

from __future__ import annotations

import re
from typing import TypeGuard

from .errors import UserError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,119}$"
_NAME = re.compile(NAME_PATTERN)
EXPECTED = "1-120 letters, digits or _.+- starting with a letter or digit"


def is_safe_name(name: object) -> TypeGuard[str]:
    return isinstance(name, str) and bool(_NAME.fullmatch(name)) and ".." not in name


def safe_name(name: object, what: str) -> str:
    """``name`` if it is safe as one path component, else a ``UserError`` (``what``: where it came from)."""
    if not is_safe_name(name):
        raise UserError(f"{what} = {name!r} cannot be a file name; expected {EXPECTED}")
    return name


def check_name(name: str) -> str:
    """Pydantic-validator form: a ``ValueError`` for an unsafe name."""
    if not is_safe_name(name):
        raise ValueError(f"cannot be a file name; expected {EXPECTED}")
    return name

