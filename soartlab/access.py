"""Who may change what, when the app is served to a team with sign-in.

The one owner of the ownership rules. A signed-in user is an `Actor`: their identity (the
OpenID Connect e-mail, else subject) and whether they are on the admin list. Runs and
workspaces record their owner; only the owner — or an admin — may rename or delete a run,
and only the owner may open a workspace. ``None`` as the actor means local single-user
mode (no sign-in configured, or the command line): nothing is checked, as before.

The admin list comes from ``[soartlab] admins = [...]`` in ``.streamlit/secrets.toml``
(the app reads it) or from ``$SOARTLAB_ADMINS`` (comma-separated), see `admins_from`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from soartlab.errors import SoartLabError

ADMINS_ENV = "SOARTLAB_ADMINS"


class AccessError(SoartLabError):
    """A signed-in user asked to change what is not theirs."""


@dataclass(frozen=True)
class Actor:
    """A signed-in user."""

    user: str  # e-mail (or the provider's subject when it gives no e-mail)
    admin: bool = False  # on the admin list: may rename and delete anyone's runs


def admins_from(configured: Iterable[str] | None = None) -> frozenset[str]:
    """The admin list: ``configured`` (from the secrets) plus ``$SOARTLAB_ADMINS``,
    compared case-insensitively."""
    names = list(configured or [])
    names += os.environ.get(ADMINS_ENV, "").split(",")
    return frozenset(n.strip().lower() for n in names if str(n).strip())


def actor(user: str, admins: Iterable[str] = ()) -> Actor:
    """The `Actor` for ``user``, an admin when ``user`` is on ``admins``."""
    user = str(user).strip()
    return Actor(user, user.lower() in {a.lower() for a in admins})


def owns(who: Actor | None, owner: str) -> bool:
    """True when ``who`` is ``owner`` (local mode owns everything)."""
    return who is None or (bool(owner) and owner.lower() == who.user.lower())


def may_change(who: Actor | None, owner: str) -> bool:
    """Whether ``who`` may rename or delete a run of ``owner`` ("": made without sign-in,
    the team's: admins only)."""
    return who is None or who.admin or owns(who, owner)


def check_may_change(who: Actor | None, owner: str, what: str, action: str) -> None:
    """`AccessError` unless `may_change`; ``what`` names the thing, ``action`` the verb."""
    if may_change(who, owner):
        return
    whose = f"{owner}'s" if owner else "the team's (made without sign-in)"
    raise AccessError(
        f"You ({who.user}) cannot {action} {what}: it is {whose}. Only its owner or an "
        f"admin ([soartlab] admins in secrets.toml, or ${ADMINS_ENV}) can."
    )
