"""`finsent dashboard`: a read-only web page over the database, and `finsent report`'s source.

A small JSON API (series per topic or ticker, alerts, latest items, model versions) and one
static page that draws it with uPlot (vendored under `pipeline/web/static/vendor`, MIT; no build
step, nothing fetched at run time). Bound to a non-loopback address it refuses to start without
`FINSENT_DASHBOARD_TOKEN`, and then every request must carry the token (`Authorization: Bearer`
or `?token=`). It only reads: every query is a SELECT.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import mimetypes
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from alerts.series import TICKER, SeriesQuery, read_series
from connectors.db import rollups
from connectors.db.schema import Alert, Article, CurrentPrediction, ModelVersion, utcnow
from connectors.errors import UserInputError

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")
MAX_POINTS = 2000


class DashboardData:
    """The page's queries; each returns plain JSON-ready data."""

    def __init__(self, engine: Engine, topic_instruction: str = "topic") -> None:
        self.engine = engine
        self.topic_instruction = topic_instruction

    def keys(self, dimension: str, since_s: float, limit: int = 25) -> list[dict[str, Any]]:
        since = utcnow() - timedelta(seconds=since_s)
        rollup = self._rollup(dimension)
        if rollup is None:
            return self._live_topic_keys(since, limit)
        # From the hourly rollups, whole hours from the one `since` falls in: a week of a busy
        # wire is 170 rollup rows per key instead of 230,000 articles at 1 M stored.
        ranked = rollups.top_keys(self.engine, rollup, int(since.timestamp() // 3600), limit)
        return [{"key": key, "items": n} for key, n in ranked]

    def series(self, dimension: str, key: str, bucket_s: int, since_s: float) -> dict[str, Any]:
        points = max(2, min(MAX_POINTS, int(since_s // bucket_s)))
        now = utcnow()
        rollup = self._rollup(dimension)
        if rollup is not None and bucket_s % 3600 == 0:
            # Whole-hour buckets: read from the hourly rollups, clock-aligned (the chart's last
            # point is the hour in progress), at a cost independent of the history's size.
            volume, negative, rated, signed, times = self._hourly(rollup, key, bucket_s // 3600, points, now)
        else:
            data = read_series(
                self.engine,
                SeriesQuery(dimension if dimension == TICKER else self.topic_instruction, bucket_s, points),
                now,
            )
            rows = [data.index[key]] if key else list(range(len(data.keys)))
            if key and key not in data.index:
                rows = []
            volume = data.volume[rows].sum(axis=0) if rows else np.zeros(points)
            negative = data.negative[rows].sum(axis=0) if rows else np.zeros(points)
            rated = data.rated[rows].sum(axis=0) if rows else np.zeros(points)
            signed = data.signed_sum[rows].sum(axis=0) if rows else np.zeros(points)
            end = now.timestamp()
            times = [end - bucket_s * (points - 1 - i) for i in range(points)]

        def ratio(a: np.ndarray, b: np.ndarray) -> list[float | None]:
            return [None if d == 0 else round(float(n / d), 4) for n, d in zip(a, b, strict=True)]

        return {
            "dimension": dimension,
            "key": key,
            "bucket_s": bucket_s,
            "t": [round(t) for t in times],
            "volume": [int(v) for v in volume],
            "negative_share": ratio(negative, rated),
            "mean_sentiment": ratio(signed, rated),
        }

    def _live_topic_keys(self, since: datetime, limit: int) -> list[dict[str, Any]]:
        """The labels of a topic instruction other than the built-in one, counted from the current
        answers (the topic rollup keeps the built-in `topic` only: reading it here would show the
        wrong instruction's labels)."""
        with Session(self.engine) as session:
            rows = session.execute(
                select(CurrentPrediction.label, func.count().label("n"))
                .join(Article, Article.id == CurrentPrediction.article_id)
                .where(CurrentPrediction.instruction == self.topic_instruction, Article.published_at > since)
                .group_by(CurrentPrediction.label)
                .order_by(func.count().desc(), CurrentPrediction.label)
                .limit(limit)
            ).all()
        return [{"key": str(key), "items": int(n)} for key, n in rows]

    def _rollup(self, dimension: str) -> rollups.Rollup | None:
        if dimension == TICKER:
            return rollups.TICKER
        return rollups.TOPIC if self.topic_instruction == "topic" else None

    def _hourly(
        self, rollup: rollups.Rollup, key: str, hours_per_point: int, points: int, now: datetime
    ) -> tuple[
        NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], list[float]
    ]:
        """Per point (oldest first): volume, negative, rated, signed sum, and the point's end."""
        last_hour = int(now.timestamp() // 3600)
        first_hour = last_hour - points * hours_per_point + 1
        sums = np.zeros((4, points))
        for hour, _key, items, negative, _neutral, _positive, rated, signed in rollups.read_hours(
            self.engine, rollup, first_hour, key or None
        ):
            point = (int(hour) - first_hour) // hours_per_point
            if 0 <= point < points:
                sums[:, point] += (items, negative, rated, float(signed or 0.0))
        times = [float((first_hour + (i + 1) * hours_per_point) * 3600) for i in range(points)]
        return sums[0], sums[1], sums[2], sums[3], times

    def alerts(self, since_s: float) -> list[dict[str, Any]]:
        since = utcnow() - timedelta(seconds=since_s)
        with Session(self.engine) as session:
            rows = session.scalars(
                select(Alert)
                .where((Alert.started_at > since) | Alert.state.in_(("pending", "firing")))
                .order_by(Alert.started_at.desc())
                .limit(500)
            )
            return [
                {
                    "id": a.id,
                    "rule": a.rule,
                    "dimension": a.dimension,
                    "key": a.series_key,
                    "state": a.state,
                    "severity": a.severity,
                    "summary": a.summary,
                    "started_at": a.started_at.isoformat(),
                    "fired_at": a.fired_at.isoformat() if a.fired_at else None,
                    "resolved_at": a.resolved_at.isoformat() if a.resolved_at else None,
                    "peak_score": round(a.peak_score, 2),
                }
                for a in rows
            ]

    def latest(self, n: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT article_id, title, source, published_at, topic, topic_score, sentiment, "
                    "sentiment_score, model_version FROM v_articles_classified "
                    "ORDER BY ingested_at DESC, article_id LIMIT :n"
                ),
                {"n": n},
            ).mappings()
            return [
                {
                    **{
                        k: row[k]
                        for k in ("article_id", "title", "source", "topic", "sentiment", "model_version")
                    },
                    "published_at": str(row["published_at"]),
                    "topic_score": None
                    if row["topic_score"] is None
                    else round(float(row["topic_score"]), 3),
                    "sentiment_score": None
                    if row["sentiment_score"] is None
                    else round(float(row["sentiment_score"]), 3),
                }
                for row in rows
            ]

    def models(self) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            rows = session.scalars(select(ModelVersion).order_by(ModelVersion.created_at.desc()).limit(50))
            return [
                {
                    "version": m.version,
                    "status": m.status,
                    "created_at": m.created_at.isoformat(),
                    "activated_at": m.activated_at.isoformat() if m.activated_at else None,
                    "metrics": _headline_metrics(m.metrics),
                    "decision_reason": m.decision_reason,
                }
                for m in rows
            ]


def _headline_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Accuracy and macro-F1 per instruction, wherever the registry stored them."""
    found: dict[str, Any] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("accuracy", "macro_f1") and isinstance(value, int | float):
                    found[f"{path}{key}"] = round(float(value), 4)
                elif isinstance(value, dict) and path.count("/") < 3:
                    walk(value, f"{path}{key}/")

    walk(metrics, "")
    return found


def _number(query: dict[str, list[str]], name: str, default: float, low: float, high: float) -> float:
    try:
        value = float(query.get(name, [default])[0])
    except ValueError:
        raise ValueError(f"{name} must be a number") from None
    return min(high, max(low, value))


def make_handler(data: DashboardData, token: str | None) -> type[BaseHTTPRequestHandler]:
    routes: dict[str, Callable[[dict[str, list[str]]], Any]] = {
        "/api/keys": lambda q: data.keys(_dimension(q), _number(q, "since_s", 7 * 86400, 3600, 90 * 86400)),
        "/api/series": lambda q: data.series(
            _dimension(q),
            q.get("key", [""])[0],
            int(_number(q, "bucket_s", 3600, 60, 86400)),
            _number(q, "since_s", 7 * 86400, 3600, 90 * 86400),
        ),
        "/api/alerts": lambda q: data.alerts(_number(q, "since_s", 7 * 86400, 3600, 90 * 86400)),
        "/api/latest": lambda q: data.latest(int(_number(q, "n", 50, 1, 500))),
        "/api/models": lambda q: data.models(),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if token and not self._authorised(query):
                self._send(401, b"token required\n", "text/plain")
                return
            if url.path in ("/", "/index.html"):
                self._file(STATIC / "index.html")
            elif url.path.startswith("/static/"):
                name = url.path.removeprefix("/static/")
                target = (STATIC / name).resolve()
                if STATIC.resolve() not in target.parents or not target.is_file():
                    self._send(404, b"not found\n", "text/plain")
                else:
                    self._file(target)
            elif url.path in routes:
                try:
                    body = json.dumps(routes[url.path](query), default=str).encode()
                except ValueError as exc:
                    self._send(400, f"{exc}\n".encode(), "text/plain")
                    return
                self._send(200, body, "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _authorised(self, query: dict[str, list[str]]) -> bool:
            offered = query.get("token", [""])[0]
            header = self.headers.get("Authorization", "")
            if header.startswith("Bearer "):
                offered = header.removeprefix("Bearer ")
            return bool(token) and hmac.compare_digest(offered.encode(), str(token).encode())

        def _file(self, path: Path) -> None:
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            self._send(200, path.read_bytes(), kind)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def _dimension(query: dict[str, list[str]]) -> str:
    value = query.get("dimension", ["topic"])[0]
    if value not in ("topic", TICKER):
        raise ValueError("dimension must be topic or ticker")
    return value


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def start(engine: Engine, host: str, port: int, token: str | None) -> ThreadingHTTPServer:
    """Serve in a daemon thread; the caller keeps the process alive (or stops the server)."""
    if not _is_loopback(host) and not token:
        raise UserInputError(
            f"the dashboard binds {host}, which is not a loopback address: set FINSENT_DASHBOARD_TOKEN"
        )
    server = ThreadingHTTPServer((host, port), make_handler(DashboardData(engine), token))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="finsent-dashboard", daemon=True).start()
    return server
