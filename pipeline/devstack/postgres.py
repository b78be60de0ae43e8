"""A private PostgreSQL cluster for the tests, from Debian's packages.

The server binaries are installed with apt-get when absent. The cluster lives in its own data
folder on its own loopback port, so it never touches a system cluster, and it trusts loopback
connections: it is a development service, not a deployment recipe (docker-compose is that).
PostgreSQL refuses to run as root, so as root every server command runs as the `postgres` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class PostgresError(RuntimeError):
    """The server could not be installed, started or reached; the message says why."""


@dataclass(frozen=True)
class PostgresConfig:
    """Data folder and loopback port of the private cluster."""

    data_dir: Path
    port: int = 55432
    user: str = "postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"


def default_data_dir(home: Path, port: int) -> Path:
    """Where the cluster lives. As root the server runs as `postgres`, which may not be able to
    reach a folder inside a private checkout, so root keeps it in a root-owned system folder
    (not a world-writable temporary one, where another user could plant it first)."""
    if os.geteuid() == 0:
        return Path("/var/lib/finsent-dev") / f"postgres-{port}"
    return home / "postgres"


def _bin_dir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version_key)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found else None


def _version_key(path: str) -> int:
    try:
        return int(Path(path).parts[-3])
    except ValueError:
        return 0


def ensure_installed() -> Path:
    """Install the server from Debian's packages if it is missing; return its bin folder."""
    found = _bin_dir()
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PostgresError("PostgreSQL server binaries not found; install the 'postgresql' package")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "postgresql"]):
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise PostgresError(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    found = _bin_dir()
    if found is None:
        raise PostgresError("apt-get installed postgresql but pg_ctl is still missing")
    return found


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_as_server_user(cmd), capture_output=True, text=True, check=False)


def is_running(config: PostgresConfig) -> bool:
    bindir = _bin_dir()
    if bindir is None:
        return False
    result = subprocess.run(
        [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(config.port)],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def start(config: PostgresConfig, ready_timeout_s: float = 30.0) -> None:
    """Install if needed, create the cluster once, and start it if it is not running."""
    bindir = ensure_installed()
    if is_running(config):
        return
    config.data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(config.data_dir, "postgres", "postgres")
        config.data_dir.chmod(0o700)
    if not (config.data_dir / "PG_VERSION").exists():
        result = _run(
            [
                str(bindir / "initdb"),
                "-D",
                str(config.data_dir),
                "-U",
                config.user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        )
        if result.returncode != 0:
            raise PostgresError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={config.port} -c unix_socket_directories={config.data_dir}"
        " -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    result = _run(
        [
            str(bindir / "pg_ctl"),
            "-D",
            str(config.data_dir),
            "-l",
            str(config.data_dir / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            str(int(ready_timeout_s)),
            "start",
        ]
    )
    if result.returncode != 0:
        log = config.data_dir / "server.log"
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise PostgresError(f"pg_ctl start failed:\n{result.stdout}\n{result.stderr}\n{tail}")
    deadline = time.monotonic() + ready_timeout_s
    while not is_running(config):
        if time.monotonic() > deadline:
            raise PostgresError("PostgreSQL did not accept connections in time")
        time.sleep(0.2)


def stop(config: PostgresConfig, mode: str = "fast") -> bool:
    """Stop the cluster; False when it was not running."""
    bindir = _bin_dir()
    if bindir is None or not (config.data_dir / "postmaster.pid").exists():
        return False
    result = _run([str(bindir / "pg_ctl"), "-D", str(config.data_dir), "-m", mode, "-w", "stop"])
    return result.returncode == 0


def create_database(config: PostgresConfig, name: str) -> str:
    """Create a database (if absent) and return its SQLAlchemy URL."""
    import psycopg  # deferred: only callers that use PostgreSQL need the driver

    with psycopg.connect(
        f"host=127.0.0.1 port={config.port} user={config.user} dbname=postgres", autocommit=True
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    return config.url(name)


def drop_database(config: PostgresConfig, name: str) -> None:
    import psycopg

    with psycopg.connect(
        f"host=127.0.0.1 port={config.port} user={config.user} dbname=postgres", autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
