"""Reading a warehouse file of an earlier release (schema 1..5, one DuckDB file written by DuckDB 2.x).

The warehouse now runs on DuckDB 1.5.5 (the version DuckLake's extension ships for), which cannot open a
file that DuckDB 2.x wrote ("version number 999"), and one Python environment cannot import two duckdb
versions. So a side folder holds `duckdb>=2,<3` (`pip install --target`; `make install` puts it in
`<venv>/legacy-duckdb`), and a child interpreter that imports only from that folder copies every base table
of the old file to Parquet, which DuckDB 1.5.5 reads. warehouse/legacy.py loads those files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from newsmon.errors import StorageError

SIDE_PACKAGE = "duckdb>=2,<3"
SCHEMA_VERSIONS = range(1, 6)  # the single-file warehouse's versions; 5 was the last

# Run as `python -I -c SCRIPT <side folder> <db> <out dir>`: -I keeps the working directory, PYTHONPATH and
# user site-packages out of sys.path, so `import duckdb` can only find the side folder's DuckDB 2.x.
SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import duckdb
db, out = sys.argv[2], sys.argv[3]
def fail(message):
    sys.stderr.write(message + "\n")
    sys.exit(2)
if not duckdb.__version__.startswith("2."):
    fail(f"{sys.argv[1]} holds duckdb {duckdb.__version__}, not 2.x; delete that folder to reinstall it")
try:
    con = duckdb.connect(db, read_only=True)
except duckdb.Error as e:
    fail("DuckDB 2 cannot open it (" + " ".join(str(e).split()) + ")")
tables = [r[0] for r in con.execute(
    "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
    "ORDER BY table_name").fetchall()]
row = None
if "meta" in tables:
    row = con.execute("SELECT max(value) FROM meta WHERE key = 'schema_version'").fetchone()
if row is None or row[0] is None or not row[0].isdigit():
    fail(f"no schema_version in a meta table (tables: {', '.join(tables) or 'none'}); "
         "this is not a newsmon warehouse: point [warehouse] path at the old newsmon.duckdb")
version = int(row[0])
if not 1 <= version <= 5:
    fail(f"schema_version {version} is not one this release migrates (1..5; tables: {', '.join(tables)}); "
         "open it with the newsmon release that wrote it")
for t in tables:
    target = f"{out}/{t}.parquet".replace("'", "''")
    con.execute(f'COPY (SELECT * FROM "{t}") TO \'{target}\' (FORMAT parquet)')
con.close()
with open(f"{out}/meta.json", "w", encoding="utf-8") as fh:
    json.dump({"schema_version": version, "tables": tables, "duckdb": duckdb.__version__}, fh)
"""


def _holds_duckdb2(folder: Path) -> bool:
    return (folder / "duckdb" / "__init__.py").is_file() and any(folder.glob("duckdb-2.*.dist-info"))


def legacy_duckdb_path() -> Path:
    """The folder holding DuckDB 2.x: $NEWSMON_LEGACY_DUCKDB, <sys.prefix>/legacy-duckdb, then
    ~/.cache/newsmon/legacy-duckdb; when none holds it, pip installs it into the last one."""
    env = os.environ.get("NEWSMON_LEGACY_DUCKDB")
    candidates = [Path(env)] if env else []
    candidates += [Path(sys.prefix) / "legacy-duckdb", Path.home() / ".cache" / "newsmon" / "legacy-duckdb"]
    for folder in candidates:
        if _holds_duckdb2(folder):
            return folder
    folder = candidates[-1]
    hint = f"run: {sys.executable} -m pip install --target {folder} '{SIDE_PACKAGE}' (or `make install`)"
    # into a sibling first, renamed when complete: a failed or concurrent install never leaves half a package
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.parent.mkdir(parents=True, exist_ok=True)
        # -P: a `pip/` in the working folder is not imported in place of pip
        done = subprocess.run([sys.executable, "-P", "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                               str(partial), SIDE_PACKAGE], capture_output=True, text=True, check=False)
        if done.returncode != 0 or not _holds_duckdb2(partial):
            lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
            raise StorageError(f"could not install {SIDE_PACKAGE} to read the old warehouse "
                               f"(pip: {lines[-1]}); {hint}")
        if not _holds_duckdb2(folder):
            shutil.rmtree(folder, ignore_errors=True)
            partial.rename(folder)
    except OSError as e:
        if not _holds_duckdb2(folder):  # else another process installed it first
            raise StorageError(f"could not install {SIDE_PACKAGE} into {folder} ({e}); {hint}") from e
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def export_legacy(db: Path, out_dir: Path) -> dict[str, Path]:
    """Every base table of the old warehouse `db` to `<out_dir>/<table>.parquet` (and `meta.json`: its
    schema_version and tables), read by DuckDB 2.x in a child process. Returns table -> Parquet file."""
    try:
        with db.open("rb") as f:
            head = f.read(12)
    except OSError as e:
        raise StorageError(f"cannot read the old warehouse ({e.strerror}); check [warehouse] path", url=str(db)) from e
    if head[8:12] != b"DUCK":
        raise StorageError("is not a DuckDB database file; point [warehouse] path at the old newsmon.duckdb "
                           "or move this file away", url=str(db))
    try:
        side = legacy_duckdb_path()
    except StorageError as e:
        raise StorageError(str(e), url=str(db)) from e
    out_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-I", "-c", SCRIPT, str(side), str(db.resolve()), str(out_dir.resolve())],
                          capture_output=True, text=True, check=False, cwd=out_dir)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise StorageError(f"could not export the old warehouse: {lines[-1]}", url=str(db))
    meta = json.loads((out_dir / "meta.json").read_text(encoding="utf-8"))
    files = {str(t): out_dir / f"{t}.parquet" for t in meta["tables"]}
    missing = [t for t, p in files.items() if not p.is_file()]
    if missing or int(meta["schema_version"]) not in SCHEMA_VERSIONS:
        raise StorageError(f"the export is incomplete (missing: {', '.join(missing) or 'none'}); "
                           "run the migration again", url=str(db))
    return files
