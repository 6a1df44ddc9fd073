"""What a password must be (ASVS 2.1.1, 2.1.7): long enough, not one of the common or breached
ones (common_passwords.txt, see its README), and not built on the account's name or address."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from flask_babel import gettext as _

from portal.errors import DomainError

MIN_LENGTH = 12
#: What must be left of a password once the user's name and address are taken out of it.
MIN_OWN_PART = 8
COMMON = Path(__file__).with_name("common_passwords.txt")
_NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]+")


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list, lower-cased (read once: it never changes while the portal runs)."""
    with COMMON.open(encoding="utf-8") as fh:
        return frozenset(line.strip().lower() for line in fh if line.strip())


def _personal_parts(email: str, name: str) -> list[str]:
    """The address, its local part and domain name, and the words of both and of the name
    (three characters or more), longest first."""
    email = email.strip().lower()
    local, _at, domain = email.partition("@")
    words = _NOT_LETTER_OR_DIGIT.split(f"{local} {domain.rsplit('.', 1)[0]} {name.lower()}")
    parts = {email, local, _NOT_LETTER_OR_DIGIT.sub("", name.lower()), *words}
    return sorted((p for p in parts if len(p) >= 3), key=len, reverse=True)


def check(password: str, *, email: str = "", name: str = "") -> None:
    """Raise DomainError (field "password") unless the password may be used."""
    if len(password) < MIN_LENGTH:
        raise DomainError(
            _("The password must be at least %(n)d characters long.", n=MIN_LENGTH),
            field="password")
    folded = password.lower()
    squeezed = _NOT_LETTER_OR_DIGIT.sub("", folded)
    if folded in common_passwords() or squeezed in common_passwords():
        raise DomainError(_("This password is one of the most common ones (it is on lists "
                            "attackers try first). Choose another."), field="password")
    parts = _personal_parts(email, name)
    if email and email.strip().lower() in folded:
        raise DomainError(_("The password must not contain your e-mail address."),
                          field="password")
    if any(part in folded or part in squeezed for part in parts):
        rest = squeezed
        for part in parts:
            rest = rest.replace(_NOT_LETTER_OR_DIGIT.sub("", part), "")
        if len(rest) < MIN_OWN_PART or rest in common_passwords():
            raise DomainError(_("The password must not be built on your name or e-mail "
                                "address. Choose another."), field="password")
