"""Named leases: a job that one replica at a time runs."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from index.activity.rows import iso
from index.activity.tables import (
    leases,
)
from index.sql import SQLDatabase


class Leases:
    """Jobs that one replica at a time runs (the retention purge)."""

    db: SQLDatabase

    def try_lease(self, name: str, owner: str, now: datetime, until: datetime) -> bool:
        """Take (or renew) the lease ``name`` until ``until`` if nobody else holds a live
        one; True when ``owner`` holds it now."""
        lease = leases.c
        with self.db.write() as conn:
            held = conn.execute(
                sa.select(lease.owner, lease.until).where(lease.name == name).with_for_update()
            ).first()
            if held is None:
                insert = self.db.insert(leases).values(name=name, owner=owner, until=iso(until))
                taken = insert.on_conflict_do_nothing().returning(leases.c.name)
                return conn.execute(taken).first() is not None
            if held.owner != owner and held.until > iso(now):
                return False
            conn.execute(
                leases.update().where(lease.name == name).values(owner=owner, until=iso(until))
            )
            return True
