"""The PostgREST subset that supabase-py and supabase-js send, served at ``/rest/v1/``.

Every request runs in one transaction as the role of its key (``anon``, ``authenticated`` or
``service_role``) with ``request.jwt.claims`` set, so the database's grants and RLS policies decide what
happens, as on Supabase. Table, column and function names from the client are checked against the
catalog and quoted; values only ever travel as query parameters.

Answers and errors follow PostgREST 12: JSON bodies built by PostgreSQL (``json_agg``), the
``Content-Range`` header, ``Prefer`` handling, and errors shaped ``{"code","details","hint","message"}``
with PostgREST's mapping from SQLSTATE to HTTP status.
"""

# SQL here is assembled from catalog-checked, quoted identifiers; client values only travel as parameters.
# ruff: noqa: S608

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web

from localsupabase import auth
from localsupabase.db import as_role
from localsupabase.faults import Faults

SCHEMA = "public"
"""The only schema exposed, as on a default Supabase project."""

SINGLE_OBJECT = "application/vnd.pgrst.object+json"

_RESERVED_PARAMS = frozenset({"select", "order", "limit", "offset", "on_conflict", "columns", "apikey"})
_UNSUPPORTED_PARAMS = frozenset({"or", "and", "not.or", "not.and"})
_COMPARISONS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_PATTERNS = {"like": "like", "ilike": "ilike"}
_IS_VALUES = {"null": "null", "not_null": "not null", "true": "true", "false": "false", "unknown": "unknown"}
_PLAIN_NAME = re.compile(r"^[^\s\"(),.:]+$")

# PostgREST's mapping from SQLSTATE (exact, then two-character class) to HTTP status; anything else is 400.
_STATUS_BY_SQLSTATE = {
    "23503": 409,
    "23505": 409,
    "25006": 405,
    "42883": 404,
    "42P01": 404,
    "42P17": 500,
    "P0001": 400,
}
_STATUS_BY_CLASS = {
    "08": 503,
    "09": 500,
    "0L": 403,
    "0P": 403,
    "25": 500,
    "28": 403,
    "2D": 500,
    "38": 500,
    "39": 500,
    "3B": 500,
    "40": 500,
    "53": 503,
    "54": 500,
    "55": 500,
    "57": 500,
    "58": 500,
    "F0": 500,
    "HV": 500,
    "P0": 500,
    "XX": 500,
}


class RestError(Exception):
    """An error answered to the client as PostgREST would, with its HTTP status and JSON body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: str | None = None,
        hint: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        """Return the error as an HTTP response."""
        body = {"code": self.code, "details": self.details, "hint": self.hint, "message": self.message}
        headers = {"Proxy-Status": f"PostgREST; error={self.code}", **self.headers}
        return web.json_response(body, status=self.status, headers=headers)


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (the name must already be known to the catalog)."""
    return '"' + name.replace('"', '""') + '"'


def request_token(request: web.Request) -> str | None:
    """Return the JWT a request carries: the bearer token, else the ``apikey`` header or query parameter."""
    authorization = request.headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("apikey") or request.query.get("apikey") or None


def pg_error_status(sqlstate: str, role: str) -> int:
    """Return the HTTP status PostgREST answers for a PostgreSQL error raised for ``role``."""
    if sqlstate == "42501":
        # PostgREST: insufficient privilege is 401 without a user, 403 for an authenticated one.
        return 401 if role == "anon" else 403
    if sqlstate in _STATUS_BY_SQLSTATE:
        return _STATUS_BY_SQLSTATE[sqlstate]
    return _STATUS_BY_CLASS.get(sqlstate[:2], 400)


def error_from_postgres(exc: asyncpg.PostgresError, role: str) -> RestError:
    """Turn a PostgreSQL error into the PostgREST error that carries the same SQLSTATE and texts."""
    sqlstate = str(exc.sqlstate or "XX000")
    return RestError(
        pg_error_status(sqlstate, role),
        sqlstate,
        str(exc.message if exc.message is not None else exc),
        details=exc.detail,
        hint=exc.hint,
    )


def unavailable() -> RestError:
    """The error PostgREST answers while it cannot reach the database."""
    return RestError(
        503,
        "PGRST001",
        "Database client error. Retrying the connection.",
        details="The stand-in was told to act as if the database were unreachable.",
    )


def claims_of(secret: str, token: str | None) -> dict[str, Any]:
    """Verify the request's key or token and return its claims.

    Raises:
        RestError: 401 when the key is missing, expired or not signed with the stack's secret.
    """
    if token is None:
        raise RestError(
            401,
            "PGRST301",
            "No API key found in request",
            hint="No `apikey` request header or url param was found.",
        )
    try:
        return auth.verify(secret, token)
    except auth.AuthError as exc:
        code = "PGRST303" if "expired" in str(exc) else "PGRST301"
        message = "JWT expired" if code == "PGRST303" else str(exc)
        raise RestError(
            401,
            code,
            message,
            headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{message}"'},
        ) from exc


# --- catalog ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A table or view of the exposed schema, as the catalog describes it."""

    name: str
    columns: dict[str, str]
    """Column name → SQL type (``format_type``), in column order."""
    primary_key: tuple[str, ...]

    @property
    def sql(self) -> str:
        """The table's qualified, quoted name."""
        return f"{quote_ident(SCHEMA)}.{quote_ident(self.name)}"

    def column(self, name: str) -> str:
        """Return the SQL type of column ``name``.

        Raises:
            RestError: 400 with SQLSTATE 42703, as PostgreSQL reports an unknown column through PostgREST.
        """
        try:
            return self.columns[name]
        except KeyError:
            raise RestError(400, "42703", f"column {self.name}.{name} does not exist") from None


@dataclass(frozen=True)
class Function:
    """A function of the exposed schema that ``/rpc`` may call."""

    name: str
    arg_names: tuple[str, ...]
    arg_types: tuple[str, ...]
    required: int
    returns_set: bool
    returns_composite: bool
    returns_void: bool

    @property
    def sql(self) -> str:
        """The function's qualified, quoted name."""
        return f"{quote_ident(SCHEMA)}.{quote_ident(self.name)}"


_TABLES_SQL = """
select c.relname, a.attname, format_type(a.atttypid, a.atttypmod) as type
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
where n.nspname = $1 and c.relkind in ('r', 'v', 'm', 'p', 'f')
order by c.relname, a.attnum
"""

_PRIMARY_KEYS_SQL = """
select c.relname, array_agg(a.attname order by k.ord) as columns
from pg_index i
join pg_class c on c.oid = i.indrelid
join pg_namespace n on n.oid = c.relnamespace
cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum
where i.indisprimary and n.nspname = $1
group by c.relname
"""

_FUNCTIONS_SQL = """
select p.proname,
       coalesce(p.proargnames, '{}'::text[]) as arg_names,
       coalesce(p.proargmodes::text[], '{}'::text[]) as arg_modes,
       array(select format_type(t, null) from unnest(p.proargtypes::oid[]) with ordinality as u(t, o)
             order by o) as in_types,
       p.pronargs, p.pronargdefaults, p.proretset,
       (rt.typtype = 'c' or p.prorettype = 'record'::regtype) as composite,
       p.prorettype = 'void'::regtype as void
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
join pg_type rt on rt.oid = p.prorettype
where n.nspname = $1 and p.proname = $2 and p.prokind = 'f'
order by p.oid
"""


class Catalog:
    """The schema cache: tables and columns of the exposed schema, reloaded when a name is missing."""

    def __init__(self) -> None:
        self._tables: dict[str, Table] = {}

    async def reload(self, conn: asyncpg.Connection) -> None:
        """Read every table, its columns and its primary key from the catalog."""
        columns: dict[str, dict[str, str]] = {}
        for row in await conn.fetch(_TABLES_SQL, SCHEMA):
            columns.setdefault(row["relname"], {})[row["attname"]] = row["type"]
        keys = {row["relname"]: tuple(row["columns"]) for row in await conn.fetch(_PRIMARY_KEYS_SQL, SCHEMA)}
        self._tables = {
            name: Table(name=name, columns=cols, primary_key=keys.get(name, ()))
            for name, cols in columns.items()
        }

    async def table(self, conn: asyncpg.Connection, name: str) -> Table:
        """Return table ``name``; reload once if it is unknown (tests create tables while running).

        Raises:
            RestError: 404 PGRST205 when the table does not exist.
        """
        if name not in self._tables:
            await self.reload(conn)
        try:
            return self._tables[name]
        except KeyError:
            raise RestError(
                404,
                "PGRST205",
                f"Could not find the table '{SCHEMA}.{name}' in the schema cache",
            ) from None

    async def function(self, conn: asyncpg.Connection, name: str, arg_names: Iterable[str]) -> Function:
        """Return the overload of function ``name`` whose named arguments fit ``arg_names``.

        Raises:
            RestError: 404 PGRST202 when no overload fits.
        """
        given = set(arg_names)
        for row in await conn.fetch(_FUNCTIONS_SQL, SCHEMA, name):
            modes = list(row["arg_modes"]) or ["i"] * row["pronargs"]
            names = list(row["arg_names"]) or [""] * len(modes)
            in_names = tuple(n for n, m in zip(names, modes, strict=False) if m in ("i", "b", "v"))
            function = Function(
                name=name,
                arg_names=in_names,
                arg_types=tuple(row["in_types"]),
                required=row["pronargs"] - row["pronargdefaults"],
                returns_set=row["proretset"],
                returns_composite=row["composite"],
                returns_void=row["void"],
            )
            if given <= set(in_names) and set(in_names[: function.required]) <= given:
                return function
        listed = ", ".join(sorted(given))
        raise RestError(
            404,
            "PGRST202",
            f"Could not find the function {SCHEMA}.{name}({listed}) in the schema cache",
            details=(
                f"Searched for the function {SCHEMA}.{name} with parameters {listed} or with a single "
                "unnamed json/jsonb parameter, but no matches were found in the schema cache."
            ),
        )


# --- query-string parsing --------------------------------------------------------------------------


def _parse_error(what: str, text: str) -> RestError:
    return RestError(400, "PGRST100", f'"failed to parse {what} ({text})"', details=f"unexpected {text!r}")


def _unsupported(feature: str) -> RestError:
    return RestError(
        400,
        "PGRST100",
        f"{feature} is not supported by the local Supabase stand-in",
        hint="Extend localsupabase/rest.py of the stand-in if the code under test needs it.",
    )


def split_list(text: str) -> list[str]:
    """Split a PostgREST list (``a,"b,c",d``) on commas outside double quotes, unquoting the items."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    was_quoted = False
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
            was_quoted = True
        elif char == "," and not quoted:
            items.append("".join(current) if was_quoted else "".join(current).strip())
            current, was_quoted = [], False
        else:
            current.append(char)
    if quoted:
        raise _parse_error("list", text)
    items.append("".join(current) if was_quoted else "".join(current).strip())
    return items


def _column_name(text: str) -> str:
    """Return a column name from the query string, unquoting ``"name"`` as postgrest-py quotes it."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return text


@dataclass
class Query:
    """The parsed query string and ``Prefer`` header of one request."""

    select: list[tuple[str, str]] | None = None
    """(column, output name) pairs; None means ``*``."""
    filters: list[tuple[str, bool, str, str]] = field(default_factory=list)
    """(column, negated, operator, value) tuples."""
    order: list[tuple[str, bool, bool | None]] = field(default_factory=list)
    """(column, descending, nulls first) tuples."""
    limit: int | None = None
    offset: int | None = None
    on_conflict: list[str] | None = None
    columns: list[str] | None = None
    prefer: dict[str, str] = field(default_factory=dict)


def parse_prefer(headers: Iterable[str]) -> dict[str, str]:
    """Return the ``Prefer`` preferences (``return``, ``resolution``, ``count``, ``missing``, …) by name."""
    prefer: dict[str, str] = {}
    for header in headers:
        for item in header.split(","):
            name, _, value = item.strip().partition("=")
            if name:
                prefer[name.strip()] = value.strip()
    return prefer


def parse_query(request: web.Request) -> Query:
    """Parse the query string of a table request.

    Raises:
        RestError: 400 PGRST100 for syntax the stand-in does not understand.
    """
    query = Query(prefer=parse_prefer(request.headers.getall("Prefer", [])))
    for key, value in request.query.items():
        if key == "select":
            query.select = _parse_select(value)
        elif key == "order":
            query.order = [_parse_order(item) for item in split_list(value) if item]
        elif key in ("limit", "offset"):
            try:
                number = int(value)
            except ValueError:
                raise _parse_error(key, value) from None
            if number < 0:
                raise _parse_error(key, value)
            setattr(query, key, number)
        elif key == "on_conflict":
            query.on_conflict = [_column_name(c) for c in split_list(value)]
        elif key == "columns":
            query.columns = [_column_name(c) for c in split_list(value)]
        elif key == "apikey":
            continue
        elif key in _UNSUPPORTED_PARAMS or ("." in key and key.rsplit(".", 1)[-1] in ("or", "and", "order")):
            raise _unsupported(f"the {key!r} parameter")
        else:
            query.filters.append(_parse_filter(_column_name(key), value))
    return query


def _parse_select(value: str) -> list[tuple[str, str]] | None:
    items = [item for item in split_list(value) if item]
    if not items or items == ["*"]:
        return None
    selected: list[tuple[str, str]] = []
    for item in items:
        alias, sep, column = item.partition(":")
        if not sep:
            alias, column = item, item
        if column == "*" or any(mark in item for mark in ("(", "->", "::", "!")):
            raise _unsupported(f"select={value!r} (embedding, JSON paths, casts, * beside columns)")
        selected.append((_column_name(column), _column_name(alias)))
    return selected


def _parse_order(item: str) -> tuple[str, bool, bool | None]:
    parts = item.split(".")
    column, modifiers = _column_name(parts[0]), parts[1:]
    descending = False
    nulls_first: bool | None = None
    for modifier in modifiers:
        if modifier in ("asc", "desc"):
            descending = modifier == "desc"
        elif modifier in ("nullsfirst", "nullslast"):
            nulls_first = modifier == "nullsfirst"
        else:
            raise _parse_error("order", item)
    return column, descending, nulls_first


def _parse_filter(column: str, value: str) -> tuple[str, bool, str, str]:
    negated = False
    if value.startswith("not."):
        negated, value = True, value[4:]
    operator, sep, operand = value.partition(".")
    if not sep:
        raise _parse_error("filter", value)
    if operator not in _COMPARISONS and operator not in _PATTERNS and operator not in ("is", "in"):
        raise _unsupported(f"the filter operator {operator!r}")
    return column, negated, operator, operand


# --- SQL building ----------------------------------------------------------------------------------


class Params:
    """Positional query parameters, numbered as they are added."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        """Add ``value`` and return its placeholder (``$n``)."""
        self.values.append(value)
        return f"${len(self.values)}"


def where_clause(table: Table, filters: list[tuple[str, bool, str, str]], params: Params) -> str:
    """Return the ``where …`` clause (or an empty string) for the request's filters on ``table``."""
    conditions: list[str] = []
    for column, negated, operator, operand in filters:
        col_type = table.column(column)
        target = f"{table.sql}.{quote_ident(column)}"
        if operator in _COMPARISONS:
            # Values travel as text and PostgreSQL casts them to the column type, like PostgREST's literals.
            condition = f"{target} {_COMPARISONS[operator]} {params.add(operand)}::text::{col_type}"
        elif operator in _PATTERNS:
            condition = f"{target} {_PATTERNS[operator]} {params.add(operand.replace('*', '%'))}::text"
        elif operator == "is":
            if operand.lower() not in _IS_VALUES:
                raise _parse_error("filter", f"is.{operand}")
            condition = f"{target} is {_IS_VALUES[operand.lower()]}"
        else:
            if not (operand.startswith("(") and operand.endswith(")")):
                raise _parse_error("filter", f"in.{operand}")
            inner = operand[1:-1]
            values = split_list(inner) if inner else []
            condition = f"{target} = any({params.add(values)}::text[]::{col_type}[])"
        conditions.append(f"not ({condition})" if negated else condition)
    return " where " + " and ".join(conditions) if conditions else ""


def select_list(table: Table, select: list[tuple[str, str]] | None, source: str) -> str:
    """Return the output column list of a read or of a returned representation."""
    if select is None:
        return f"{source}.*"
    parts = []
    for column, alias in select:
        table.column(column)
        parts.append(f"{source}.{quote_ident(column)} as {quote_ident(alias)}")
    return ", ".join(parts)


def order_clause(table: Table, order: list[tuple[str, bool, bool | None]]) -> str:
    """Return the ``order by …`` clause (or an empty string)."""
    terms = []
    for column, descending, nulls_first in order:
        table.column(column)
        term = f"{table.sql}.{quote_ident(column)}" + (" desc" if descending else " asc")
        if nulls_first is not None:
            term += " nulls first" if nulls_first else " nulls last"
        terms.append(term)
    return " order by " + ", ".join(terms) if terms else ""


_AGGREGATE = (
    "select count(*)::bigint as n, coalesce(json_agg(pgrst_t), '[]')::text as body,"
    " (json_agg(pgrst_t) -> 0)::text as first from ({inner}) pgrst_t"
)


# --- the handler -----------------------------------------------------------------------------------


def _check_profile(request: web.Request) -> None:
    """Refuse a schema other than ``public`` (postgrest-py names it in Accept-Profile/Content-Profile)."""
    for header in ("Accept-Profile", "Content-Profile"):
        schema = request.headers.get(header)
        if schema is not None and schema != SCHEMA:
            raise RestError(406, "PGRST106", f"The schema must be one of the following: {SCHEMA}")


class _SingleRowViolation(Exception):
    """Raised inside a transaction to roll it back when a single object was asked for and not found."""

    def __init__(self, rows: int) -> None:
        super().__init__(rows)
        self.rows = rows


def _single_error(rows: int) -> RestError:
    return RestError(
        406,
        "PGRST116",
        "Cannot coerce the result to a single JSON object",
        details=f"The result contains {rows} rows",
    )


def _json_response(
    body: str | None, status: int, *, single: bool = False, headers: Mapping[str, str] | None = None
) -> web.Response:
    content_type = SINGLE_OBJECT if single else "application/json"
    return web.Response(
        body=None if body is None else body.encode(),
        status=status,
        content_type=content_type,
        charset="utf-8",
        headers=dict(headers or {}),
    )


MAX_ROWS = 1000
"""Rows a read answers at most: ``max_rows`` of supabase/config.toml and a hosted project's default."""


class RestApi:
    """The ``/rest/v1`` routes of the stand-in.

    Args:
        pool: asyncpg pool connected as a superuser (each request switches to its own role).
        jwt_secret: the stack's JWT secret, which signs the keys and user tokens.
        faults: the stand-in's fault switches (``rest_unavailable``).
    """

    def __init__(self, pool: asyncpg.Pool, jwt_secret: str, faults: Faults) -> None:
        self._pool = pool
        self._secret = jwt_secret
        self._faults = faults
        self.catalog = Catalog()

    def add_routes(self, app: web.Application) -> None:
        """Mount the routes on ``app``."""
        app.router.add_route("*", "/rest/v1/rpc/{function}", self.handle_rpc)
        app.router.add_route("*", "/rest/v1/{table}", self.handle_table)

    async def handle_table(self, request: web.Request) -> web.StreamResponse:
        """Serve GET/HEAD (read), POST (insert/upsert), PATCH (update) and DELETE on a table."""
        return await self._guarded(request, self._table)

    async def handle_rpc(self, request: web.Request) -> web.StreamResponse:
        """Serve ``POST /rest/v1/rpc/<function>`` (and GET with arguments in the query string)."""
        return await self._guarded(request, self._rpc)

    async def _guarded(self, request: web.Request, serve: Any) -> web.StreamResponse:
        role = "anon"
        try:
            if self._faults.rest_unavailable:
                self._faults.rest_refused += 1
                raise unavailable()
            claims = claims_of(self._secret, request_token(request))
            role = str(claims["role"])
            _check_profile(request)
            response: web.StreamResponse = await serve(request, claims)
            return response
        except RestError as exc:
            return exc.response()
        except asyncpg.PostgresError as exc:
            return error_from_postgres(exc, role).response()
        except (OSError, asyncpg.ConnectionDoesNotExistError):
            return unavailable().response()

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise RestError(400, "PGRST102", "Empty or invalid json") from None

    async def _table(self, request: web.Request, claims: dict[str, Any]) -> web.StreamResponse:
        name = request.match_info["table"]
        query = parse_query(request)
        single = request.headers.get("Accept", "").split(";")[0].strip() == SINGLE_OBJECT
        method = request.method
        body = await self._body(request) if method in ("POST", "PATCH") else None
        async with self._pool.acquire() as conn:
            table = await self.catalog.table(conn, name)
            try:
                async with as_role(conn, claims):
                    if method in ("GET", "HEAD"):
                        return await self._read(conn, table, query, single, head=method == "HEAD")
                    if method == "POST":
                        return await self._insert(conn, table, query, body, single)
                    if method == "PATCH":
                        return await self._update(conn, table, query, body, single)
                    if method == "DELETE":
                        return await self._delete(conn, table, query, single)
            except _SingleRowViolation as exc:
                raise _single_error(exc.rows) from None
        raise RestError(405, "PGRST117", f"Unsupported HTTP method: {method}")

    async def _read(
        self, conn: asyncpg.Connection, table: Table, query: Query, single: bool, *, head: bool
    ) -> web.StreamResponse:
        params = Params()
        where = where_clause(table, query.filters, params)
        inner = f"select {select_list(table, query.select, table.sql)} from {table.sql}{where}"
        inner += order_clause(table, query.order)
        # PostgREST's db-max-rows caps every read, silently: a reader pages with limit and offset.
        limit = MAX_ROWS if query.limit is None else min(query.limit, MAX_ROWS)
        inner += f" limit {params.add(limit)}::bigint"
        if query.offset is not None:
            inner += f" offset {params.add(query.offset)}::bigint"
        row = await conn.fetchrow(_AGGREGATE.format(inner=inner), *params.values)
        total = "*"
        if query.prefer.get("count") in ("exact", "planned", "estimated"):
            count_params = Params()
            count_where = where_clause(table, query.filters, count_params)
            total = str(
                await conn.fetchval(f"select count(*) from {table.sql}{count_where}", *count_params.values)
            )
        rows = int(row["n"])
        start = query.offset or 0
        content_range = f"{start}-{start + rows - 1}/{total}" if rows else f"*/{total}"
        headers = {"Content-Range": content_range}
        if single:
            if rows != 1:
                raise _single_error(rows)
            return _json_response(None if head else row["first"], 200, single=True, headers=headers)
        return _json_response(None if head else row["body"], 200, headers=headers)

    def _payload_columns(
        self, table: Table, query: Query, body: Any
    ) -> tuple[list[dict[str, Any]], list[str]]:
        if isinstance(body, dict):
            rows = [body]
        elif isinstance(body, list) and all(isinstance(item, dict) for item in body):
            rows = body
        else:
            raise RestError(400, "PGRST102", "Empty or invalid json")
        if query.prefer.get("missing") == "default" and any(set(item) != set(rows[0]) for item in rows):
            # PostgREST would use each column's default for the keys a row lacks; the stand-in cannot.
            raise _unsupported("Prefer: missing=default with rows of different keys")
        if query.columns is not None:
            columns = query.columns
        elif rows:
            columns = list(rows[0])
            if any(set(item) != set(columns) for item in rows[1:]):
                raise RestError(400, "PGRST102", "All object keys must match")
        else:
            columns = []
        for column in columns:
            if column not in table.columns:
                raise RestError(
                    400,
                    "PGRST204",
                    f"Could not find the '{column}' column of '{table.name}' in the schema cache",
                )
        return rows, columns

    async def _finish_write(
        self,
        conn: asyncpg.Connection,
        table: Table,
        query: Query,
        statement: str,
        params: Params,
        *,
        single: bool,
        created: bool,
    ) -> web.StreamResponse:
        representation = query.prefer.get("return") == "representation"
        ok_status = 201 if created else 200
        empty_status = 201 if created else 204
        if representation or single:
            listed = select_list(table, query.select, "pgrst_source")
            sql = f"with pgrst_source as ({statement} returning {table.sql}.*) " + _AGGREGATE.format(
                inner=f"select {listed} from pgrst_source"
            )
            row = await conn.fetchrow(sql, *params.values)
            rows = int(row["n"])
            if single and rows != 1:
                raise _SingleRowViolation(rows)
            headers = {"Content-Range": f"0-{rows - 1}/*" if rows else "*/*"}
            if not representation:
                return web.Response(status=empty_status, headers=headers)
            body = row["first"] if single else row["body"]
            return _json_response(body, ok_status, single=single, headers=headers)
        # Without a representation there is no RETURNING, so SELECT policies do not apply, as in PostgREST.
        result = await conn.execute(statement, *params.values)
        rows = int(result.rsplit(" ", 1)[-1]) if result else 0
        headers = {"Content-Range": f"0-{rows - 1}/*" if rows else "*/*"}
        return web.Response(status=empty_status, headers=headers)

    async def _insert(
        self, conn: asyncpg.Connection, table: Table, query: Query, body: Any, single: bool
    ) -> web.StreamResponse:
        rows, columns = self._payload_columns(table, query, body)
        params = Params()
        column_list = ", ".join(quote_ident(c) for c in columns)
        source = f"jsonb_populate_recordset(null::{table.sql}, {params.add(json.dumps(rows))}::jsonb)"
        if columns:
            statement = f"insert into {table.sql} ({column_list}) select {column_list} from {source}"
        else:
            # Objects without keys insert rows made only of defaults, one per object.
            statement = f"insert into {table.sql} select from {source}"
        resolution = query.prefer.get("resolution")
        if resolution in ("merge-duplicates", "ignore-duplicates"):
            conflict = query.on_conflict or list(table.primary_key)
            for column in conflict:
                table.column(column)
            if not conflict:
                raise RestError(400, "PGRST100", f"Table '{table.name}' has no primary key for an upsert")
            target = ", ".join(quote_ident(c) for c in conflict)
            if resolution == "ignore-duplicates" or not columns:
                statement += f" on conflict ({target}) do nothing"
            else:
                assignments = ", ".join(f"{quote_ident(c)} = excluded.{quote_ident(c)}" for c in columns)
                statement += f" on conflict ({target}) do update set {assignments}"
        return await self._finish_write(conn, table, query, statement, params, single=single, created=True)

    async def _update(
        self, conn: asyncpg.Connection, table: Table, query: Query, body: Any, single: bool
    ) -> web.StreamResponse:
        if not isinstance(body, dict):
            raise RestError(400, "PGRST102", "Empty or invalid json")
        _, columns = self._payload_columns(table, query, body)
        self._require_filters(query, "UPDATE")
        params = Params()
        if not columns:
            # Nothing to change: PostgREST answers with no rows without touching the table.
            return await self._read_nothing(query, single)
        record = f"jsonb_populate_record(null::{table.sql}, {params.add(json.dumps(body))}::jsonb)"
        assignments = ", ".join(f"{quote_ident(c)} = pgrst_body.{quote_ident(c)}" for c in columns)
        where = where_clause(table, query.filters, params)
        statement = f"update {table.sql} set {assignments} from (select * from {record}) pgrst_body{where}"
        return await self._finish_write(conn, table, query, statement, params, single=single, created=False)

    async def _delete(
        self, conn: asyncpg.Connection, table: Table, query: Query, single: bool
    ) -> web.StreamResponse:
        self._require_filters(query, "DELETE")
        params = Params()
        where = where_clause(table, query.filters, params)
        statement = f"delete from {table.sql}{where}"
        return await self._finish_write(conn, table, query, statement, params, single=single, created=False)

    @staticmethod
    def _require_filters(query: Query, command: str) -> None:
        # Supabase loads pg-safeupdate for API requests: an UPDATE or DELETE without a WHERE clause fails.
        if not query.filters:
            raise RestError(400, "21000", f"{command} requires a WHERE clause")
        if query.limit is not None or query.offset is not None:
            raise _unsupported(f"limit/offset on {command}")

    @staticmethod
    async def _read_nothing(query: Query, single: bool) -> web.StreamResponse:
        if single:
            raise _single_error(0)
        if query.prefer.get("return") == "representation":
            return _json_response("[]", 200, headers={"Content-Range": "*/*"})
        return web.Response(status=204, headers={"Content-Range": "*/*"})

    async def _rpc(self, request: web.Request, claims: dict[str, Any]) -> web.StreamResponse:
        name = request.match_info["function"]
        if request.method in ("GET", "HEAD"):
            args: Any = {k: v for k, v in request.query.items() if k != "apikey"}
        elif request.method == "POST":
            args = await self._body(request)
            if args is None:
                args = {}
        else:
            raise RestError(405, "PGRST101", "Only GET, HEAD and POST are allowed for /rpc")
        single = request.headers.get("Accept", "").split(";")[0].strip() == SINGLE_OBJECT
        async with self._pool.acquire() as conn:
            if not isinstance(args, dict):
                raise RestError(400, "PGRST102", "Empty or invalid json")
            function = await self.catalog.function(conn, name, args)
            params = Params()
            call_args = []
            source = ""
            if args:
                definitions = ", ".join(
                    f"{quote_ident(n)} {t}"
                    for n, t in zip(function.arg_names, function.arg_types, strict=True)
                    if n in args
                )
                source = (
                    f"jsonb_to_record({params.add(json.dumps(args))}::jsonb) as pgrst_args({definitions}), "
                )
                call_args = [
                    f"{quote_ident(n)} := pgrst_args.{quote_ident(n)}"
                    for n in function.arg_names
                    if n in args
                ]
            call = f"{function.sql}({', '.join(call_args)})"
            if function.returns_composite:
                inner = f"select pgrst_call.* from {source}lateral {call} pgrst_call"
                aggregate = "json_agg(pgrst_t)"
            else:
                inner = f"select pgrst_call.pgrst_scalar from {source}lateral {call} pgrst_call(pgrst_scalar)"
                aggregate = "json_agg(pgrst_t.pgrst_scalar)"
            sql = (
                f"select count(*)::bigint as n, coalesce({aggregate}, '[]')::text as body,"
                f" ({aggregate} -> 0)::text as first from ({inner}) pgrst_t"
            )
            async with as_role(conn, claims):
                row = await conn.fetchrow(sql, *params.values)
        rows = int(row["n"])
        headers = {"Content-Range": f"0-{rows - 1}/*" if rows else "*/*"}
        if function.returns_void:
            return web.Response(status=204, headers=headers)
        if function.returns_set and not single:
            body = row["body"]
        else:
            if single and rows != 1:
                raise _single_error(rows)
            body = row["first"] if row["first"] is not None else "null"
        return _json_response(None if request.method == "HEAD" else body, 200, single=single, headers=headers)
