"""A plan of a test's own (``chatcore.money.plans``), with a user on it."""

from __future__ import annotations

import uuid

from chatcore.money import plans
from tests.support.users import User


def new_plan(db_conn, user: User, **limits) -> str:
    """A plan of this test's own, with ``limits`` (define's options), and ``user`` on it."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    plans.define(db_conn, name, **{k: None if v is None else str(v) for k, v in limits.items()})
    user.new_session()  # the user exists once they called the API
    plans.assign(db_conn, user.sub, name)
    return name
