"""`finsent report`: the dashboard's main charts as a PNG (or PDF), for an email or a ticket.

The picture is the dashboard itself, rendered by headless Chromium against a private,
loopback-only instance of the dashboard server: one set of charts, drawn one way, in both places.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import Engine

from connectors.errors import UserInputError
from pipeline.web import dashboard


def chromium_command(binary: str) -> list[str]:
    found = shutil.which(binary)
    if found is None:
        raise UserInputError(f"{binary!r} not found: install Chromium (Debian: apt-get install chromium)")
    command = [found, "--headless", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]
    if os.geteuid() == 0:
        command.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    return command


def page_url(port: int, *, since_s: float, bucket_s: int, dimension: str, key: str, report: bool) -> str:
    query = {"since_s": int(since_s), "bucket_s": bucket_s, "dimension": dimension, "key": key}
    if report:
        query["report"] = 1
    return f"http://127.0.0.1:{port}/?{urlencode(query)}"


def render(
    engine: Engine,
    output: Path,
    *,
    since_s: float,
    dimension: str = "topic",
    key: str = "",
    chromium: str = "chromium",
    timeout_s: float = 120.0,
) -> Path:
    if output.suffix.lower() not in (".png", ".pdf"):
        raise UserInputError("the report is a .png or a .pdf")
    bucket_s = 3600 if since_s <= 14 * 86400 else 86400
    server = dashboard.start(engine, "127.0.0.1", 0, token=None)
    try:
        url = page_url(
            server.server_address[1],
            since_s=since_s,
            bucket_s=bucket_s,
            dimension=dimension,
            key=key,
            report=True,
        )
        output.parent.mkdir(parents=True, exist_ok=True)
        target = output.resolve()
        target.unlink(missing_ok=True)
        kind = f"--screenshot={target}" if target.suffix.lower() == ".png" else f"--print-to-pdf={target}"
        with tempfile.TemporaryDirectory() as profile:
            command = [
                *chromium_command(chromium),
                f"--user-data-dir={profile}",
                "--window-size=1400,1800",
                "--virtual-time-budget=20000",  # let the page fetch its data and draw before the shot
                kind,
                url,
            ]
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
        if not target.exists() or target.stat().st_size == 0:
            raise RuntimeError(f"chromium wrote no report (exit {result.returncode}): {result.stderr[-500:]}")
        return target
    finally:
        server.shutdown()
        server.server_close()


def dump_dom(url: str, chromium: str = "chromium", timeout_s: float = 120.0) -> str:
    """The page's DOM after its scripts ran (what a browser test inspects)."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                *chromium_command(chromium),
                f"--user-data-dir={profile}",
                "--virtual-time-budget=20000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    return result.stdout
