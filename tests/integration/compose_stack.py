"""The compose file's services as processes on this machine: what a container network provides, translated.

No Docker engine runs here. :class:`Stack` reads a service's command, environment and health check from
docker-compose.yaml and localizes them: service host names become 127.0.0.1 with a free port each, ``/opt/mlops``
this checkout, ``${VAR}`` a value from ``.env.example`` with a random one for every password and secret. The
compose file's PostgreSQL and Redis run as Debian's builds (``make test-tools`` installs them; without them the
tests that need them skip, saying so). Used by ``test_stack.py`` (the whole stack) and ``test_celery.py`` (Airflow
on Celery workers).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from services import BIN, free_port, port_open, wait_for

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]


@dataclass
class Stack:
    """Where each service of the compose file listens here, and the values compose would take from ``.env``."""

    ports: dict[str, int] = field(default_factory=dict)  # "service:container port" -> local port
    dotenv: dict[str, str] = field(default_factory=dict)

    def port(self, service: str, container_port: int) -> int:
        return self.ports.setdefault(f"{service}:{container_port}", free_port())

    def localize(self, text: str) -> str:
        """A compose value as this machine needs it: ``${VAR}`` from the env file (``$$`` is a literal ``$``),
        services on 127.0.0.1."""
        text = re.sub(r"(?<!\$)\$\{(\w+)\}", lambda m: self.dotenv[m.group(1)], text).replace("$$", "$")
        text = re.sub(
            r"\b([a-z][a-z0-9-]*):(\d+)\b",
            lambda m: f"127.0.0.1:{self.port(m.group(1), int(m.group(2)))}" if m.group(1) in SERVICES else m.group(0),
            text,
        )
        return text.replace("/opt/mlops", str(REPO))

    def command(self, service: str) -> list[str]:
        """The service's command with its own port and loopback-only listening addresses."""
        raw = SERVICES[service]["command"]
        args = [self.localize(arg) for arg in (raw if isinstance(raw, list) else shlex.split(raw))]
        options = {"--host": "127.0.0.1", "--dashboard-address": "127.0.0.1:0"}
        for index, arg in enumerate(args[:-1]):
            if arg in options:
                args[index + 1] = options[arg]
            elif arg == "--port":
                args[index + 1] = str(self.port(service, int(args[index + 1])))
        return args

    def health_check(self, service: str) -> list[str]:
        """The service's health-check command, run here: ``localhost:PORT`` is the service's own port."""
        kind, *test = SERVICES[service]["healthcheck"]["test"]
        args = [
            re.sub(r"localhost:(\d+)", lambda m: f"127.0.0.1:{self.port(service, int(m.group(1)))}", a) for a in test
        ]
        args = [self.localize(arg) for arg in args]
        return ["sh", "-c", args[0]] if kind == "CMD-SHELL" else args

    def env(self, service: str, **extra: str) -> dict[str, str]:
        declared = SERVICES[service].get("environment", {})
        environment = {name: self.localize(str(value)) for name, value in declared.items()}
        # The image installs this checkout's `pipelines` (/opt/mlops); here the checkout itself comes first, not
        # whichever checkout the virtualenv's editable install points at.
        return {**environment, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO), **extra}


def dotenv() -> dict[str, str]:
    """``.env.example``'s variables, with a random value for every password and secret."""
    values = dict(
        line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines() if re.match(r"^\w+=", line)
    )
    return {k: secrets.token_hex(16) if re.search("PASSWORD|SECRET", k) else v for k, v in values.items()}


@contextlib.contextmanager
def redis(stack: Stack, directory: Path) -> Iterator[None]:
    """The ``redis`` service's command (Debian's ``redis-server``) on 127.0.0.1 and the port the broker URL names,
    keeping nothing on disk; shut down at the end."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (`make test-tools` installs Debian's redis-server)")
    port = stack.port("redis", 6379)
    args = [*stack.command("redis"), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with open(directory / "redis.log", "wb") as log:
        server = subprocess.Popen([*args, "--dir", str(directory)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: port_open(port), "redis-server")
        yield
    finally:
        server.terminate()
        server.wait(timeout=30)


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@contextlib.contextmanager
def postgres(stack: Stack) -> Iterator[None]:
    """A Postgres cluster as the ``postgres`` service initialises one: its user, password and database, then the
    init scripts it mounts; TCP on 127.0.0.1 only (no Unix socket), stopped and deleted at the end."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (`make test-tools` installs Debian's postgresql)")
    service = SERVICES["postgres"]
    env = {k: stack.localize(v) for k, v in service["environment"].items()}
    # Postgres refuses to run as root: as root, run it as the `postgres` account Debian's package creates.
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    directory = Path(tempfile.mkdtemp(prefix="stack-postgres-"))
    if run_as:
        shutil.chown(directory, "postgres")
    password = directory / "password"
    password.write_text(env["POSTGRES_PASSWORD"])
    if run_as:
        shutil.chown(password, "postgres")
    data, port = directory / "data", stack.port("postgres", 5432)
    initdb = [bindir / "initdb", "-D", data, "-U", env["POSTGRES_USER"], f"--pwfile={password}", "--no-sync"]
    subprocess.run([*run_as, *initdb, "--auth=scram-sha-256", "--encoding=UTF8"], check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' -c fsync=off"
    subprocess.run(
        [*run_as, bindir / "pg_ctl", "-D", data, "-l", directory / "postgres.log", "-o", options, "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        dsn = f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@127.0.0.1:{port}"
        sql(f"{dsn}/postgres", f"CREATE DATABASE {env['POSTGRES_DB']}", autocommit=True)
        for volume in service["volumes"]:
            source, _, target = volume.partition(":")
            if "/docker-entrypoint-initdb.d/" in target:
                sql(f"{dsn}/{env['POSTGRES_DB']}", (REPO / source).read_text(), autocommit=True)
        yield
    finally:
        stop = [*run_as, bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"]
        subprocess.run(stop, capture_output=True, check=False)  # whatever it says, the folder goes next
        shutil.rmtree(directory, ignore_errors=True)


def sql(dsn: str, statement: str, autocommit: bool = False) -> list[tuple]:
    import psycopg2

    connection = psycopg2.connect(dsn)
    connection.autocommit = autocommit
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            rows = cursor.fetchall() if cursor.description else []
        if not autocommit:
            connection.commit()
        return rows
    finally:
        connection.close()
