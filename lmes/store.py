"""The event store: the one door to persisted migrations, whatever produced them.

An `eventsourcing` application. Where it keeps its events is chosen by a store URL:
a SQLite file under `$LMES_HOME` by default (nothing to start), `postgresql://…` when several
executors and analysts share one store, `memory:` for throw-away runs. Writers that race on one
migration (an executor and a separate `lmes abort`) both land: a command is re-run on a fresh
copy when the store reports that someone else appended first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, OperationalError, ProgrammingError

from lmes.domain.instance import Instance, instance_id_for
from lmes.domain.migration import Migration
from lmes.errors import UserError
from lmes.home import lmes_home

T = TypeVar("T", bound=Aggregate)

SQLITE_FILE = "lmes.sqlite"
MAX_CONFLICT_RETRIES = 50
PAGE = 1000


def default_store_url() -> str:
    return os.environ.get("LMES_STORE") or f"sqlite:///{(lmes_home() / SQLITE_FILE).resolve()}"


def persistence_env(url: str) -> dict[str, str]:
    """Translate a store URL into the environment `eventsourcing` reads."""
    if url in ("memory:", "memory://"):
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = Path(unquote(parts.path if parts.netloc == "" else parts.netloc + parts.path))
        if not str(path) or str(path) == "/":
            raise UserError(f"store URL {url!r} names no SQLite file")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(
                f"cannot create the store folder {path.parent}: {exc.strerror}"
            ) from None
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(path),
            "SQLITE_LOCK_TIMEOUT": "30",
        }
    if parts.scheme in ("postgresql", "postgres"):
        dbname = parts.path.lstrip("/")
        if not dbname or not parts.hostname:
            raise UserError(
                f"store URL {url!r} needs a host and a database: postgresql://user@host:port/db"
            )
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(dbname),
            "POSTGRES_HOST": parts.hostname,
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or os.environ.get("PGUSER", "postgres")),
            "POSTGRES_PASSWORD": unquote(parts.password or os.environ.get("PGPASSWORD", "")),
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_POOL_SIZE": "2",
        }
        return env
    raise UserError(
        f"unknown store URL {url!r}: use sqlite:///PATH, postgresql://user@host:port/db or memory:"
    )


class MigrationStore(Application[UUID]):
    """Migrations and instances, stored as their events."""

    name = "lmes"

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_store_url()
        super().__init__(env=persistence_env(self.url))

    # ------------------------------------------------------------- writing

    def add(self, *aggregates: Aggregate) -> None:
        """Save new aggregates (or their pending events) in one transaction."""
        self.save(*aggregates)

    def change(self, aggregate_id: UUID, command: Callable[[T], Any]) -> T:
        """Run `command` on the latest copy and save; on a concurrent append, run it again.

        The command re-checks its rules on each fresh copy, so a retry never records what the
        newer state forbids, and no event is lost or doubled.
        """
        for attempt in range(MAX_CONFLICT_RETRIES):
            aggregate: T = self.repository.get(aggregate_id)
            command(aggregate)
            try:
                self.save(aggregate)
                return aggregate
            except IntegrityError:
                time.sleep(min(0.001 * 2**attempt, 0.2))
        raise UserError(f"{aggregate_id} is changing too fast to record this; try again")

    # ------------------------------------------------------------- reading

    def migration(self, migration_id: UUID | str) -> Migration:
        return self.repository.get(self.resolve(migration_id))

    def has(self, aggregate_id: UUID) -> bool:
        return aggregate_id in self.repository

    def instance(self, name: str) -> Instance | None:
        try:
            return self.repository.get(instance_id_for(name))
        except AggregateNotFoundError:
            return None

    def all_events(self) -> Iterator[Any]:
        """Every stored domain event, in the order the store recorded them."""
        start = 1
        while True:
            page = self.recorder.select_notifications(start=start, limit=PAGE)
            for notification in page:
                yield self.mapper.to_domain_event(notification)
            if len(page) < PAGE:
                return
            start = page[-1].id + 1

    def migrations(self) -> Iterator[Migration]:
        """Every migration, rebuilt from one pass over the log."""
        yield from fold(self.all_events(), Migration.MigrationRequested)

    def resolve(self, migration_id: UUID | str) -> UUID:
        """A full id, or an unambiguous prefix of one, as `git` accepts short hashes."""
        if isinstance(migration_id, UUID):
            if migration_id not in self.repository:
                raise UserError(f"no migration {migration_id} in the store")
            return migration_id
        text = migration_id.strip().lower()
        try:
            full = UUID(text)
        except ValueError:
            full = None
        if full is not None:
            return self.resolve(full)
        if len(text) < 4 or any(c not in "0123456789abcdef-" for c in text):
            raise UserError(f"{migration_id!r} is not a migration id (give at least 4 hex digits)")
        matches = [
            e.originator_id
            for e in self.all_events()
            if isinstance(e, Migration.MigrationRequested) and str(e.originator_id).startswith(text)
        ]
        if not matches:
            raise UserError(f"no migration {migration_id} in the store")
        if len(matches) > 1:
            raise UserError(f"{migration_id} is ambiguous: {len(matches)} migrations start with it")
        return matches[0]


def fold(events: Iterable[Any], created: type[Any]) -> Iterator[Any]:
    """Rebuild the aggregates whose streams begin with a `created` event, from a mixed log."""
    built: dict[UUID, Any] = {}
    for event in events:
        if event.originator_version == 1:
            if isinstance(event, created):
                built[event.originator_id] = event.mutate(None)
        elif event.originator_id in built:
            built[event.originator_id] = event.mutate(built[event.originator_id])
    yield from built.values()


def open_store(url: str | None = None) -> MigrationStore:
    """Open the store, turning an unreachable or unusable one into a one-line user error."""
    try:
        store = MigrationStore(url)
        store.recorder.max_notification_id()
    except UserError:
        raise
    except (OperationalError, ProgrammingError, OSError) as exc:
        raise UserError(
            f"cannot open the store {url or default_store_url()}: {_first_line(exc)}"
        ) from None
    except Exception as exc:  # driver errors of every kind end here when the server is away
        if type(exc).__module__.startswith(("psycopg", "sqlite3", "eventsourcing")):
            raise UserError(
                f"cannot open the store {url or default_store_url()}: {_first_line(exc)}"
            ) from None
        raise
    return store


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
