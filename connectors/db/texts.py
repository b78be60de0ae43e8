"""Stored article texts, newest first, as the worker's model read them: the unlabelled news that a
distillation teacher labels for its student (the news the service actually sees, which no public
data set matches as well)."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from connectors.db.schema import Article
from connectors.news_item import article_text

BODY_CHARS = 2000  # the models read 64-128 tokens: a longer body only costs transfer and memory


def recent_article_texts(engine: Engine, limit: int) -> list[str]:
    """Up to `limit` texts (headline, then body when there is one), newest ingestion first."""
    if limit <= 0:
        return []
    with Session(engine) as session:
        rows = session.execute(
            select(Article.title, Article.body).order_by(Article.ingested_at.desc()).limit(limit)
        ).all()
    return [article_text(title, body[:BODY_CHARS]) for title, body in rows if title]
