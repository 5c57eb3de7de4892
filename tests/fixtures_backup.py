"""A real PostgreSQL 15 server for the backup tests (session-scoped, own port and socket dir).

initdb runs as the ``postgres`` system user (it refuses root). The cluster listens on
127.0.0.1 with scram password auth over TCP (what the tasks use) and trust on its private unix
socket (what the tests use to inspect and set up databases as the superuser).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, ROOT_NS, free_port, need

PG_BIN = Path("/usr/lib/postgresql/15/bin")

SOURCE_SQL = r"""
create table accounts (id serial primary key, name text not null, balance numeric(18, 2),
                       created timestamptz default now(), tags text[]);
create schema ledger;
create table ledger.entries (id bigserial primary key, account int references accounts(id),
                             amount numeric(18, 2) not null, memo text, payload bytea);
create index entries_account on ledger.entries (account);
create view account_totals as select account, sum(amount) from ledger.entries group by 1;
insert into accounts (name, balance, tags)
  select 'account ' || g || E' \u00e9\u20ac\t"q"\n', g * 10.5, array['a', 'b:' || g]
  from generate_series(1, 300) g;
insert into ledger.entries (account, amount, memo, payload)
  select (g % 300) + 1, g * 0.01, case when g % 7 = 0 then null else 'memo ' || g end,
         decode(md5(g::text), 'hex') || '\x00ff'::bytea
  from generate_series(1, 5000) g;
"""


@dataclass
class PgServer:
    """The running test cluster; ``sql``/``psql`` run as superuser over the unix socket."""

    base: Path
    port: int
    socket_dir: Path
    user: str
    password: str
    host: str = "127.0.0.1"

    def psql(
        self, *args: str, db: str = "postgres", **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        where = ["-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres", "-d", db]
        argv = [str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", *where, *args]
        return subprocess.run(argv, capture_output=True, text=True, check=True, **kwargs)

    def sql(self, query: str, db: str = "postgres") -> str:
        return self.psql("-A", "-t", "-c", query, db=db).stdout.strip()

    def create_db(self, name: str, populate: str | None = None) -> str:
        self.sql(f'create database "{name}" owner {self.user}')
        if populate:
            self.psql("-c", f"set role {self.user}", "-c", populate, db=name)
        return name

    def schema(self, db: str) -> str:
        argv = [
            str(PG_BIN / "pg_dump"),
            "--schema-only",
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            db,
        ]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        return "\n".join(
            line
            for line in out.splitlines()
            if line and not line.startswith(("--", "\\restrict", "\\unrestrict"))
        )

    def tables(self, db: str) -> list[str]:
        rows = self.sql(
            "select format('%I.%I', schemaname, relname) from pg_stat_user_tables order by 1", db
        )
        return rows.splitlines()

    def row_counts(self, db: str) -> dict[str, int]:
        return {t: int(self.sql(f"select count(*) from {t}", db)) for t in self.tables(db)}

    def checksum(self, db: str) -> dict[str, str]:
        query = "select md5(coalesce(string_agg(x::text, '|' order by x::text), '')) from {} x"
        return {t: self.sql(query.format(t), db) for t in self.tables(db)}


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """PostgreSQL 15 on a free port, with db ``flowlet`` (small, varied) and ``flowlet_big``."""
    need(str(PG_BIN / "initdb"), "runuser")
    with postgres_cluster() as server:
        server.create_db("flowlet", SOURCE_SQL)
        server.create_db(
            "flowlet_big",
            "create table big (id int primary key, pad text); insert into big select g, "
            "repeat(md5(g::text), 3) from generate_series(1, 400000) g",
        )
        yield server


@contextmanager
def postgres_cluster(extra_options: str = "") -> Iterator[PgServer]:
    """initdb + start a private cluster (role ``flowlet`` with a password); stop and remove it.

    ``extra_options``: more ``-c name=value`` server options (later ones win)."""
    base = Path(tempfile.mkdtemp(prefix="flowlet-pg-"))
    os.chmod(base, 0o755)
    shutil.chown(base, "postgres", "postgres")
    data, sock = base / "data", base / "sock"
    for path in (data, sock):
        path.mkdir()
        shutil.chown(path, "postgres", "postgres")
    port = free_port()
    password = "pw:" + secrets.token_urlsafe(12) + "\\x"
    as_pg = ["runuser", "-u", "postgres", "--"]
    options = (
        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40"
        f" {extra_options}"
    )
    try:
        subprocess.run(
            [
                *as_pg,
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *as_pg,
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(base / "log"),
                "-o",
                options,
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        server = PgServer(base=base, port=port, socket_dir=sock, user="flowlet", password=password)
        quoted = password.replace("'", "''")
        server.sql(f"create role flowlet login createdb password '{quoted}'")
        server.sql(f"create role flowlet_admin login superuser password '{quoted}'")
        yield server
    finally:
        subprocess.run(
            [*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


def write_config(
    path: Path,
    targets: dict[str, dict[str, Any]],
    *,
    environments: dict[str, dict[str, Any]] | None = None,
    ssh: dict[str, Any] | None = None,
    env_extra: dict[str, Any] | None = None,
    **backup: Any,
) -> Path:
    """An invoke.yaml for ``-f``: ``targets`` under environments.development.databases (plus
    more ``environments``), ``backup`` keys (output_dir defaults to ``backups`` beside it)."""
    envs = {"development": {"namespace": "flowlet-dev", "databases": targets, **(env_extra or {})}}
    envs.update(environments or {})
    config: dict[str, Any] = {
        "environments": envs,
        "backup": {"output_dir": str(path.parent / "backups"), **backup},
    }
    if ssh is not None:
        config["ssh"] = ssh
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def update_config(path: Path, **sections: Any) -> Path:
    """Merge ``sections`` (``backup={...}``, ``ssh={...}`` ...) into the config file."""
    config = yaml.safe_load(path.read_text())

    def merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = value

    merge(config, sections)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def pg_target(pg: PgServer, name: str = "flowlet", **extra: Any) -> dict[str, Any]:
    return {
        "engine": "postgres",
        "host": pg.host,
        "port": pg.port,
        "name": name,
        "user": pg.user,
        "password_env": "FLOWLET_DB_PASSWORD",
        **extra,
    }


def backup_collection() -> Any:
    """The root collection holding ``backup`` (as tasks.py composes it)."""
    return ROOT_NS


@dataclass
class BackupEnv:
    """One test's config file, backup dir and the database server behind it."""

    config: Path
    out: Path
    pg: PgServer

    def files(self) -> list[str]:
        return sorted(p.name for p in self.out.iterdir()) if self.out.exists() else []

    def backups(self) -> list[Path]:
        return (
            sorted(
                p
                for p in self.out.iterdir()
                if p.is_file() and p.name.split(".")[-1] not in ("sha256", "jsonl", "partial")
            )
            if self.out.exists()
            else []
        )


@pytest.fixture
def pg_backup_env(
    pg_server: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> BackupEnv:
    """Config for the development target ``postgres`` (db flowlet) and ``big`` (flowlet_big)."""
    monkeypatch.setenv("FLOWLET_DB_PASSWORD", pg_server.password)
    config = write_config(
        tmp_path / "invoke.yaml",
        {"postgres": pg_target(pg_server), "big": pg_target(pg_server, "flowlet_big")},
    )
    return BackupEnv(config=config, out=tmp_path / "backups", pg=pg_server)


@pytest.fixture(scope="session")
def earlier_backup(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One good backup made at session start (tests copy it in as 'an earlier backup')."""
    from conftest import run_task

    base = tmp_path_factory.mktemp("earlier")
    config = write_config(base / "invoke.yaml", {"postgres": pg_target(pg_server)})
    old = os.environ.get("FLOWLET_DB_PASSWORD")
    os.environ["FLOWLET_DB_PASSWORD"] = pg_server.password
    try:
        assert run_task(backup_collection(), ["backup.postgres"], config_file=config) == 0
    finally:
        if old is None:
            os.environ.pop("FLOWLET_DB_PASSWORD", None)
        else:
            os.environ["FLOWLET_DB_PASSWORD"] = old
    (made,) = [p for p in (base / "backups").iterdir() if p.name.endswith(".sql.gz")]
    renamed = made.with_name("development-postgres-20200101T000000Z.sql.gz")
    made.rename(renamed)
    digest = (made.parent / (made.name + ".sha256")).read_text().split()[0]
    (made.parent / (made.name + ".sha256")).unlink()
    (renamed.parent / (renamed.name + ".sha256")).write_text(f"{digest}  {renamed.name}\n")
    return renamed


def plant_earlier(earlier: Path, out: Path) -> dict[str, bytes]:
    """Copy the earlier backup (and sidecar) into ``out``; return their contents."""
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    contents = {}
    for path in (earlier, earlier.with_name(earlier.name + ".sha256")):
        shutil.copy2(path, out / path.name)
        contents[path.name] = path.read_bytes()
    return contents


SAKILA = REPO / "tests" / "data" / "backup" / "sakila-mini.sql"
MYSQL_SOURCE = """
create table customers (id int auto_increment primary key, name varchar(200) not null,
                        balance decimal(18, 2), note text, created datetime default now());
create table payments (id bigint auto_increment primary key, customer int not null,
                       amount decimal(18, 2), payload blob, key (customer),
                       foreign key (customer) references customers (id));
create view totals as select customer, sum(amount) as total from payments group by customer;
insert into customers (name, balance, note) select concat('c', seq, ' \\u00e9 "q"\\t'),
  seq * 1.5, if(seq % 5 = 0, null, concat('line1\\nline2 ', seq)) from seq_1_to_200;
insert into payments (customer, amount, payload) select (seq % 200) + 1, seq / 100,
  unhex(md5(seq)) from seq_1_to_3000;
"""


@dataclass
class MariaServer:
    base: Path
    port: int
    socket: Path
    user: str
    password: str
    host: str = "127.0.0.1"

    def sql(self, query: str, db: str = "") -> str:
        argv = [
            "mariadb",
            f"--socket={self.socket}",
            "-u",
            "root",
            "-N",
            "-B",
            *([db] if db else []),
        ]
        done = subprocess.run(argv, input=query, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    def schema(self, db: str) -> str:
        argv = [
            "mariadb-dump",
            f"--socket={self.socket}",
            "-u",
            "root",
            "--no-data",
            "--skip-comments",
            "--skip-dump-date",
            db,
        ]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        return "\n".join(line for line in out.splitlines() if "AUTO_INCREMENT=" not in line)

    def row_counts(self, db: str) -> dict[str, int]:
        tables = self.sql(
            f"select table_name from information_schema.tables where table_schema="
            f"'{db}' and table_type='BASE TABLE' order by 1"
        ).split()
        return {t: int(self.sql(f"select count(*) from `{db}`.`{t}`")) for t in tables}

    def checksum(self, db: str) -> dict[str, str]:
        tables = self.row_counts(db)
        return {t: self.sql(f"checksum table `{db}`.`{t}` extended").split()[-1] for t in tables}

    def objects(self, db: str) -> dict[str, str]:
        """Every view, trigger, routine and event with its definition (as the server has it)."""
        queries = {
            "view": f"select table_name, view_definition from information_schema.views "
            f"where table_schema = '{db}'",
            "trigger": f"select trigger_name, concat_ws(' ', action_timing, event_manipulation, "
            f"event_object_table, action_statement) from information_schema.triggers "
            f"where trigger_schema = '{db}'",
            "routine": f"select concat(routine_type, ' ', routine_name), routine_definition "
            f"from information_schema.routines where routine_schema = '{db}'",
            "event": f"select event_name, concat_ws(' ', event_definition, interval_value, "
            f"interval_field, status, event_comment) from information_schema.events "
            f"where event_schema = '{db}'",
        }
        found = {}
        for kind, query in queries.items():
            for line in self.sql(query).splitlines():
                name, _, definition = line.partition("\t")
                found[f"{kind} {name}"] = definition.replace(f"`{db}`.", "")
        return found


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaServer]:
    """MariaDB on a free port (own datadir and socket), db ``shop`` with data."""
    import time

    need("mariadb-install-db", "mariadbd", "mariadb", "mariadb-dump")
    base = Path(tempfile.mkdtemp(prefix="flowlet-mariadb-"))
    os.chmod(base, 0o755)
    shutil.chown(base, "mysql", "mysql")
    data, sock = base / "data", base / "mysqld.sock"
    try:
        subprocess.run(
            [
                "mariadb-install-db",
                "--user=mysql",
                f"--datadir={data}",
                "--skip-test-db",
                "--auth-root-authentication-method=socket",
            ],
            check=True,
            capture_output=True,
        )
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    port = free_port()
    server_proc = subprocess.Popen(
        [
            "mariadbd",
            "--no-defaults",
            "--user=mysql",
            f"--datadir={data}",
            f"--socket={sock}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            f"--pid-file={base / 'mysqld.pid'}",
            f"--log-error={base / 'error.log'}",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M",
            "--skip-log-bin",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    password = "my:" + secrets.token_urlsafe(12) + '"#;\\'
    server = MariaServer(base=base, port=port, socket=sock, user="flowlet", password=password)
    try:
        deadline = time.monotonic() + 60
        while (
            subprocess.run(
                ["mariadb-admin", f"--socket={sock}", "-u", "root", "ping"],
                capture_output=True,
                check=False,
            ).returncode
            != 0
        ):
            if server_proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((base / "error.log").read_text())
            time.sleep(0.2)
        quoted = password.replace("\\", "\\\\").replace("'", "\\'")
        server.sql(
            f"create user flowlet@'127.0.0.1' identified by '{quoted}';"
            "grant all on *.* to flowlet@'127.0.0.1'; create database shop;"
        )
        server.sql(MYSQL_SOURCE, "shop")
        server.sql("create database sakila")
        server.sql(SAKILA.read_text(encoding="utf-8"), "sakila")
        yield server
    finally:
        server_proc.terminate()
        try:
            server_proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server_proc.kill()
            server_proc.wait()
        shutil.rmtree(base, ignore_errors=True)


def mysql_target(server: MariaServer, name: str = "shop", **extra: Any) -> dict[str, Any]:
    return {
        "engine": "mysql",
        "host": server.host,
        "port": server.port,
        "name": name,
        "user": server.user,
        "password_env": "FLOWLET_MYSQL_PASSWORD",
        **extra,
    }


@pytest.fixture
def fresh_pg() -> Iterator[PgServer]:
    """A second, empty PostgreSQL cluster (its own roles: flowlet, flowlet_admin, postgres)."""
    need(str(PG_BIN / "initdb"), "runuser")
    with postgres_cluster() as server:
        yield server


def pids_alive(pids: list[int]) -> list[int]:
    """Which of ``pids`` still run (zombies count as gone: they run nothing)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            alive.append(pid)
    return alive


def descendants(pid: int) -> dict[int, list[str]]:
    """Descendant pids of ``pid`` (while it runs) with their argv."""
    found: dict[int, list[str]] = {}
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            kids = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for kid in map(int, kids):
            try:
                argv = Path(f"/proc/{kid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            found[kid] = [a.decode(errors="replace") for a in argv if a]
            todo.append(kid)
    return found


def files_containing(roots: list[Path], needle: bytes) -> list[Path]:
    """Regular files under ``roots`` whose content contains ``needle``."""
    hits = []
    for root in roots:
        if not root.exists():
            continue
        paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in paths:
            try:
                if not path.is_symlink() and needle in path.read_bytes():
                    hits.append(path)
            except OSError:
                continue
    return hits


def make_identity(directory: Path) -> tuple[str, Path]:
    """An age key pair: (public recipient, identity file)."""
    need("age", "age-keygen")
    identity = directory / "keys" / "backup.key"
    identity.parent.mkdir(exist_ok=True)
    done = subprocess.run(
        ["age-keygen", "-o", str(identity)], capture_output=True, text=True, check=True
    )
    return done.stderr.split("Public key: ")[1].strip(), identity


def secret_roots(*extra: Path) -> list[Path]:
    """Where a password could be left on disk by a backup (local or, on this machine, remote):
    the run directories, /tmp/flowlet-* (old versions' pgpass dirs, remote secret dirs), plus
    ``extra`` (the test's own directories). Not the database servers' data directories."""
    from tasks.core.secrets import base_dir

    tmp = Path(tempfile.gettempdir())
    found = [base_dir(), *extra]
    for entry in tmp.glob("flowlet-*"):
        if not entry.name.startswith(("flowlet-pg-", "flowlet-mariadb-", "flowlet-ops-")):
            found.append(entry)
    return found
