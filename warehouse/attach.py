"""Where the warehouse lives and the SQL that attaches it: one DuckLake (catalog + Parquet data folder).

DuckDB's `INSTALL ducklake` needs a download; the PyPI packages `duckdb-extension-ducklake` and
`duckdb-extension-sqlite-scanner` carry the extension files for the pinned DuckDB, loaded by path, offline.
Pure: builds SQL text from paths; the connection is made in warehouse/lake.py.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from newsmon.errors import StorageError

LAKE_ALIAS = "newsmon"
# Inserts of up to this many rows stay in the catalog instead of writing one small Parquet file each (feed
# and alert mirrors, quiet runs); maintenance flushes them to Parquet.
INLINE_ROWS = 200


@dataclass(frozen=True)
class LakeLocation:
    """The catalog (a SQLite file, or `postgres:<libpq conninfo>`) and the folder of Parquet data files."""

    catalog: str
    data_path: Path

    @property
    def is_postgres(self) -> bool:
        return self.catalog.startswith("postgres:")

    def uri(self) -> str:
        return f"ducklake:{self.catalog}" if self.is_postgres else f"ducklake:sqlite:{self.catalog}"

    @property
    def shown(self) -> str:
        """The catalog for messages: a path, or a conninfo without its password."""
        return redact(self.catalog)

    def exists(self) -> bool:
        return self.is_postgres or Path(self.catalog).exists()


def redact(text: str) -> str:
    """`text` (a conninfo, a URL, or an error message quoting one) without passwords: the value of every
    `password=` and the password of a `scheme://user:password@` URL."""
    text = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s\"']+)", r"\1***", text)
    return re.sub(r"(://[^:/@\s]*):[^@/\s]*@", r"\1:***@", text)


def extension_files(loc: LakeLocation) -> list[Path]:
    """The extension files to LOAD, in order: DuckLake, then the scanner of the catalog's database (loading one
    costs ~0.3 s of signature checking in a fresh DuckDB: the other scanner is not loaded)."""
    version = duckdb.__version__
    scanner = "postgres_scanner" if loc.is_postgres else "sqlite_scanner"
    found = []
    for package, name in (("duckdb_extension_ducklake", "ducklake"), (f"duckdb_extension_{scanner}", scanner)):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        path = Path(list(spec.submodule_search_locations)[0]) / "extensions" / f"v{version}" / \
            f"{name}.duckdb_extension"
        if path.exists():
            found.append(path)
    if not any(p.name.startswith("ducklake") for p in found):
        raise StorageError(f"the DuckLake extension for DuckDB {version} is not installed; reinstall newsmon "
                           "(`make install`), which installs duckdb-extension-ducklake")
    return found


def load_sql(loc: LakeLocation) -> list[str]:
    return [f"LOAD {quote(str(p))}" for p in extension_files(loc)]


def attach_sql(loc: LakeLocation, *, read_only: bool, alias: str = LAKE_ALIAS) -> str:
    options = [f"DATA_PATH {quote(str(loc.data_path) + '/')}"]
    if read_only:
        options.append("READ_ONLY")
    else:
        options.append(f"DATA_INLINING_ROW_LIMIT {INLINE_ROWS}")
    return f"ATTACH {quote(loc.uri())} AS {alias} ({', '.join(options)})"


def analyst_sql(loc: LakeLocation) -> str:
    """What `newsmon sql --attach` prints: run in a fresh DuckDB connection, it makes the warehouse's tables and
    views queryable by their plain names, read-only."""
    lines = [*load_sql(loc), attach_sql(loc, read_only=True), f"USE {LAKE_ALIAS}"]
    return ";\n".join(lines) + ";\n"


def quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"
