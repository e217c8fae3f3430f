"""Replacing a table by the copy built beside it under a loading name, inside the caller's transaction: readers
see the old table until the transaction commits, then the new one, with the old one's grants and the views on it.

Plain psycopg, no Dagster: the registry's loader (ingest/loader.py) and the assets' steps both use it.
"""

import psycopg
from psycopg import sql

# A reader of a view locks the view, then what it reads; dropping the table first would lock in the opposite
# order and deadlock with such a reader (the reader being the one chosen to fail). So the views are dropped first,
# outermost first, then the table. A reader whose query locks in yet another order can still close a cycle: the
# swap then waits a bounded time for each lock (a savepoint, retried), well under the server's deadlock_timeout
# (1 s), so the swap gives way, not the reader. The last attempt waits as long as it takes (lock_timeout 0),
# whatever the role or database sets: a swap that gave up would leave covid.loads describing a table that
# was never swapped in.
SWAP_LOCK_TIMEOUTS_MS = (50, 100, 200, 400, 800, 0)


def swap_in(conn: psycopg.Connection, schema: str, incoming: str, target: str) -> None:
    """Replace `schema.target` by `schema.incoming` inside the caller's transaction.

    Readers keep seeing the old table until the transaction commits. The old table's SELECT grants are
    given to the new one. Views that depend on the old table are recreated on the new one with their
    definitions and grants, and the incoming table's indexes
    and constraints are renamed to the target's names so the next load can reuse the loading names.
    """
    [(previous_timeout,)] = conn.execute("SELECT current_setting('lock_timeout')").fetchall()
    *bounded, unbounded = SWAP_LOCK_TIMEOUTS_MS
    for timeout_ms in bounded:
        try:
            _swap_within(conn, schema, incoming, target, timeout_ms, previous_timeout)
            return
        except psycopg.errors.LockNotAvailable:
            continue
    # Raises if even this attempt fails (a statement_timeout, say): the caller's transaction then rolls back.
    _swap_within(conn, schema, incoming, target, unbounded, previous_timeout)


def _swap_within(
    conn, schema: str, incoming: str, target: str, timeout_ms: int, previous_timeout: str
) -> None:
    """One attempt, in a savepoint: a lock not granted within `timeout_ms` (0: no limit) undoes it alone."""
    with conn.transaction():
        conn.execute(f"SET LOCAL lock_timeout = '{int(timeout_ms)}ms'")
        _swap(conn, schema, incoming, target)
        conn.execute("SELECT set_config('lock_timeout', %s, true)", (previous_timeout,))


def _swap(conn: psycopg.Connection, schema: str, incoming: str, target: str) -> None:
    views = _dependent_views(conn, schema, target)
    # SELECT grants on the table itself carry over too (reporting marts are read by metabase_reader)
    for statement in _grants_from_acl(schema, incoming, _acl(conn, schema, target)):
        conn.execute(statement)
    for view_schema, view_name, _, _ in reversed(views):
        conn.execute(sql.SQL("DROP VIEW IF EXISTS {} CASCADE").format(sql.Identifier(view_schema, view_name)))
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(schema, target)))
    conn.execute(
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(
            sql.Identifier(schema, incoming), sql.Identifier(target)
        )
    )
    for old_name, new_name in _renamed_constraints(conn, schema, target, incoming):
        conn.execute(
            sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
                sql.Identifier(schema, target), sql.Identifier(old_name), sql.Identifier(new_name)
            )
        )
    for old_name, new_name in _renamed_indexes(conn, schema, target, incoming):
        conn.execute(
            sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                sql.Identifier(schema, old_name), sql.Identifier(new_name)
            )
        )
    for view_schema, view_name, definition, acl_statements in views:
        conn.execute(
            sql.SQL("CREATE VIEW {} AS ").format(sql.Identifier(view_schema, view_name)) + sql.SQL(definition)
        )
        for statement in acl_statements:
            conn.execute(statement)


def _dependent_views(conn, schema: str, table: str) -> list[tuple[str, str, str, list]]:
    """Views that (transitively) read `schema.table`, in an order in which they can be recreated."""
    rows = conn.execute(
        """
        WITH RECURSIVE deps(oid, depth) AS (
            SELECT DISTINCT r.ev_class, 1
              FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
             WHERE d.refobjid = to_regclass(%(qualified)s) AND r.ev_class <> d.refobjid
            UNION
            SELECT DISTINCT r.ev_class, deps.depth + 1
              FROM deps JOIN pg_depend d ON d.refobjid = deps.oid
              JOIN pg_rewrite r ON r.oid = d.objid
             WHERE r.ev_class <> d.refobjid
        )
        SELECT n.nspname, c.relname, pg_get_viewdef(c.oid), c.relacl::text[], max(deps.depth)
          FROM deps JOIN pg_class c ON c.oid = deps.oid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'v'
         GROUP BY n.nspname, c.relname, c.oid, c.relacl
         ORDER BY max(deps.depth)
        """,
        {"qualified": f'"{schema}"."{table}"'},
    ).fetchall()
    return [(s, n, d, _grants_from_acl(s, n, acl or [])) for s, n, d, acl, _ in rows]


def _acl(conn, schema: str, table: str) -> list[str]:
    row = conn.execute(
        "SELECT relacl::text[] FROM pg_class WHERE oid = to_regclass(%s)", (f'"{schema}"."{table}"',)
    ).fetchone()
    return (row and row[0]) or []


def _grants_from_acl(schema: str, name: str, acl: list[str]) -> list[sql.Composed]:
    """GRANT SELECT statements that restore the SELECT privileges in a relation's ACL (a view or a table)."""
    statements = []
    for item in acl:
        grantee, _, rest = item.partition("=")
        privileges = rest.split("/")[0]
        if grantee and "r" in privileges:
            statements.append(
                sql.SQL("GRANT SELECT ON {} TO {}").format(
                    sql.Identifier(schema, name), sql.Identifier(grantee)
                )
            )
    return statements


def _renamed_constraints(conn, schema: str, table: str, incoming: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        """SELECT conname FROM pg_constraint
            WHERE conrelid = to_regclass(%s) AND conname LIKE %s AND contype IN ('p', 'u', 'x')""",
        (f'"{schema}"."{table}"', incoming.replace("_", r"\_") + "%"),
    ).fetchall()
    return [(name, table + name[len(incoming) :]) for (name,) in rows]


def _renamed_indexes(conn, schema: str, table: str, incoming: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s AND indexname LIKE %s",
        (schema, table, incoming.replace("_", r"\_") + "%"),
    ).fetchall()
    return [(name, table + name[len(incoming) :]) for (name,) in rows]
