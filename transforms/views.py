"""Create the analyst views of ``sql/views`` on SQLite or PostgreSQL.

The view files are plain SQL with a few named macros for what the two
dialects spell differently (dates). Macros take column expressions written
in the view files only -- no data ever goes into them:

| macro | SQLite | PostgreSQL |
|---|---|---|
| ``{{today}}`` | ``date('now')`` | ``current_date`` |
| ``{{to_date(x)}}`` | ``date(x)`` | ``cast(x as date)`` |
| ``{{week_start(x)}}`` (Monday) | ``date(x, 'weekday 0', '-6 days')`` | ``cast(date_trunc('week', x) as date)`` |
| ``{{month_start(x)}}`` | ``date(x, 'start of month')`` | ``cast(date_trunc('month', x) as date)`` |
| ``{{days_between(a, b)}}`` | ``cast(julianday(a) - julianday(b) as integer)`` | ``(cast(a as date) - cast(b as date))`` |

Views are dropped and created again in file order on every ``engage init``.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from sqlalchemy import Connection, Engine, text

VIEWS_DIR = Path(str(resources.files("sql"))) / "views"

_MACROS = {
    "sqlite": {
        "today": lambda: "date('now')",
        "to_date": lambda x: f"date({x})",
        "week_start": lambda x: f"date({x}, 'weekday 0', '-6 days')",
        "month_start": lambda x: f"date({x}, 'start of month')",
        "days_between": lambda a, b: f"cast(julianday({a}) - julianday({b}) as integer)",
    },
    "postgresql": {
        "today": lambda: "current_date",
        "to_date": lambda x: f"cast({x} as date)",
        "week_start": lambda x: f"cast(date_trunc('week', {x}) as date)",
        "month_start": lambda x: f"cast(date_trunc('month', {x}) as date)",
        "days_between": lambda a, b: f"(cast({a} as date) - cast({b} as date))",
    },
}
_CALL = re.compile(r"\{\{(\w+)(?:\(([^{}]*)\))?\}\}")


def render(sql: str, dialect: str) -> str:
    macros = _MACROS[dialect]

    def expand(match: re.Match[str]) -> str:
        name, args = match.group(1), match.group(2)
        params = [a.strip() for a in args.split(",")] if args else []
        return macros[name](*params)

    previous = None
    while previous != sql:  # innermost macros first, e.g. {{days_between({{today}}, x)}}
        previous, sql = sql, _CALL.sub(expand, sql)
    return sql


def view_files() -> list[Path]:
    return sorted(VIEWS_DIR.glob("*.sql"))


def view_name(path: Path) -> str:
    return path.stem.split("_", 1)[1]


def create_views(conn: Connection) -> list[str]:
    dialect = conn.dialect.name
    names = []
    for path in reversed(view_files()):
        conn.execute(text(f'drop view if exists "{view_name(path)}"'))
    for path in view_files():
        name = view_name(path)
        conn.execute(text(f'create view "{name}" as\n{render(path.read_text(encoding="utf-8"), dialect)}'))
        names.append(name)
    return names


def install(engine: Engine) -> list[str]:
    with engine.begin() as conn:
        return create_views(conn)
