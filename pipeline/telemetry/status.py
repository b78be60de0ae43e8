"""`finsent status`: the state of a running deployment in one screen, read from the database and
the broker (not from the processes, so it works with any number of workers and from anywhere
that reaches both)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from connectors.db.admin import row_count
from connectors.db.schema import Alert, AlertNotification, Article, DeadLetter, JobLock, ModelVersion, utcnow
from connectors.kafka_io import LagProbe
from pipeline.settings import Settings

WINDOWS_MIN = (1, 5, 15)


def collect(settings: Settings, engine: Engine) -> dict[str, Any]:
    now = utcnow()
    status: dict[str, Any] = {"at": now.isoformat()}
    with Session(engine) as session:
        status["throughput_per_min"] = {
            f"{minutes}m": round(
                (
                    session.scalar(
                        select(func.count())
                        .select_from(Article)
                        .where(Article.ingested_at > now - timedelta(minutes=minutes))
                    )
                    or 0
                )
                / minutes,
                1,
            )
            for minutes in WINDOWS_MIN
        }
        total, estimated = row_count(session.connection(), "articles")
        status["articles_total"] = total
        if estimated:
            status["articles_total_estimated"] = True
        status["dlq_unresolved"] = {
            str(code): int(n)
            for code, n in session.execute(
                select(DeadLetter.reason_code, func.count())
                .where(DeadLetter.resolved_at.is_(None))
                .group_by(DeadLetter.reason_code)
                .order_by(DeadLetter.reason_code)
            )
        }
        active = session.scalars(select(ModelVersion).where(ModelVersion.status == "active")).first()
        status["active_model"] = (
            {"version": active.version, "activated_at": _iso(active.activated_at)}
            if active
            else {"version": f"base:{settings.encoder} (zero-shot)", "activated_at": None}
        )
        decided = session.scalars(
            select(ModelVersion)
            .where(ModelVersion.decision_reason != "")
            .order_by(ModelVersion.created_at.desc())
        ).first()
        status["last_retrain_decision"] = (
            {
                "version": decided.version,
                "status": decided.status,
                "reason": decided.decision_reason,
                "at": _iso(decided.created_at),
            }
            if decided
            else None
        )
        status["open_alerts"] = [
            {
                "id": a.id,
                "rule": a.rule,
                "key": a.series_key,
                "state": a.state,
                "severity": a.severity,
                "since": _iso(a.started_at),
                "score": round(a.score, 2),
            }
            for a in session.scalars(
                select(Alert).where(Alert.state.in_(("pending", "firing"))).order_by(Alert.started_at)
            )
        ]
        status["notifications"] = {
            str(s): int(n)
            for s, n in session.execute(
                select(AlertNotification.status, func.count()).group_by(AlertNotification.status)
            )
        }
        status["jobs"] = {
            lock.job_id: {
                "running": lock.running,
                "last_started": _iso(lock.started_at),
                "last_outcome": lock.last_outcome[:200],
            }
            for lock in session.scalars(select(JobLock).order_by(JobLock.job_id))
        }
    status["lag"] = _lag(settings)
    return status


def _lag(settings: Settings) -> dict[str, Any]:
    try:
        probe = LagProbe(
            settings.kafka_bootstrap,
            settings.consumer_group,
            client_id="finsent-status",
            bootstrap_timeout_s=5.0,
        )
    except Exception as exc:  # the broker down is a status, not a crash
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}
    try:
        lags = probe.lag([settings.topic_raw, settings.topic_labels])
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}
    finally:
        probe.close()
    per_topic: dict[str, int] = {}
    for (topic, _), lag in lags.items():
        per_topic[topic] = per_topic.get(topic, 0) + lag
    return {
        "total": sum(lags.values()),
        "per_topic": per_topic,
        "per_partition": {f"{t}:{p}": n for (t, p), n in lags.items()},
    }


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def render(status: dict[str, Any]) -> str:
    lines = [f"finsent status at {status['at']}"]
    rates = ", ".join(f"{k} {v}/min" for k, v in status["throughput_per_min"].items())
    about = "about " if status.get("articles_total_estimated") else ""
    lines.append(f"throughput: {rates} ({about}{status['articles_total']} articles stored)")
    lag = status["lag"]
    lines.append(
        f"lag: unavailable ({lag['error']})"
        if "error" in lag
        else f"lag: {lag['total']} messages " + ", ".join(f"{t}={n}" for t, n in lag["per_topic"].items())
    )
    dlq = status["dlq_unresolved"]
    lines.append("dead letters: " + (", ".join(f"{k}={v}" for k, v in dlq.items()) if dlq else "none"))
    model = status["active_model"]
    lines.append(
        f"active model: {model['version']}"
        + (f" since {model['activated_at']}" if model["activated_at"] else "")
    )
    decision = status["last_retrain_decision"]
    lines.append(
        "last retrain: none"
        if decision is None
        else f"last retrain: {decision['version']} {decision['status']} at {decision['at']}: "
        f"{decision['reason']}"
    )
    alerts = status["open_alerts"]
    lines.append(f"open alerts: {len(alerts)}")
    lines.extend(
        f"  #{a['id']} {a['state']} {a['severity']} {a['rule']} {a['key']} since {a['since']} "
        f"(score {a['score']})"
        for a in alerts
    )
    if status["notifications"]:
        lines.append("notifications: " + ", ".join(f"{k}={v}" for k, v in status["notifications"].items()))
    for job, info in status["jobs"].items():
        state = "running" if info["running"] else "idle"
        lines.append(f"job {job}: {state}, last started {info['last_started']}: {info['last_outcome']}")
    return "\n".join(lines)
