"""The news-item contract: identity, normalisation, and validation of raw messages."""

from __future__ import annotations

import json

import pytest

from connectors.companies import company_tickers
from connectors.news_item import (
    NewsItem,
    Rejection,
    article_id,
    canonical_url,
    clean_text,
    extract_tickers,
    make_item,
    parse_message,
)

LIMITS = {"max_title_chars": 500, "max_body_chars": 1000}


def test_ids_are_stable_across_url_spellings_and_differ_between_articles() -> None:
    a = article_id("reuters", "HTTPS://Example.com/news/1/?utm_source=x&b=2&a=1#top", "t")
    b = article_id("reuters", "https://example.com/news/1?a=1&b=2", "other title")
    assert a == b
    assert a != article_id("reuters", "https://example.com/news/2", "t")
    assert canonical_url("https://EX.com/a/?utm_medium=m") == "https://ex.com/a"


def test_id_without_url_uses_source_and_normalised_title() -> None:
    assert article_id("wire", None, "Apple beats  estimates!") == article_id(
        "WIRE", None, "apple beats estimates"
    )
    assert article_id("wire", None, "Apple beats estimates") != article_id(
        "other", None, "Apple beats estimates"
    )


def test_tickers_are_cashtags_upper_cased_in_order_without_repeats() -> None:
    assert extract_tickers("$aapl up, $MSFT down, $AAPL again; costs $5 and $BRK.B", "body $tsla") == [
        "AAPL",
        "MSFT",
        "BRK.B",
        "TSLA",
    ]


def test_clean_text_strips_markup_scripts_entities_and_controls() -> None:
    dirty = "<p>Q3 &amp; Q4</p><script>alert('x')</script>\x00\x07 results\u200b<b>up</b>"
    assert clean_text(dirty) == "Q3 & Q4 results up"
    assert clean_text(clean_text(dirty)) == clean_text(dirty)


def test_make_item_round_trips_through_parse_message() -> None:
    item = make_item(source="feed", title="<b>$NVDA</b> soars", body="Chips &amp; AI", url="https://x.test/n")
    assert item.tickers == ["NVDA"] and item.title == "$NVDA soars" and item.body == "Chips & AI"
    parsed = parse_message(item.to_json_bytes(), **LIMITS)
    assert isinstance(parsed, NewsItem) and parsed == item


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (None, "empty"),
        (b"\xff\xfe", "invalid_utf8"),
        (b"{not json", "invalid_json"),
        (b"[" * 30_000 + b"]" * 30_000, "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'{"schema_version": 2}', "unsupported_schema_version"),
        (b'{"schema_version": 1, "id": "abcdefgh1"}', "schema_violation"),
    ],
)
def test_bad_messages_are_rejected_with_a_reason_code(value: bytes | None, code: str) -> None:
    result = parse_message(value, **LIMITS)
    assert isinstance(result, Rejection) and result.code == code and result.reason


def _valid(**changes: object) -> bytes:
    data = json.loads(make_item(source="s", title="Fed holds rates").to_json_bytes())
    data.update(changes)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"title": "x" * 501}, "field_too_large"),
        ({"body": "x" * 1001}, "field_too_large"),
        ({"title": 5}, "schema_violation"),
        ({"published_at": "2026-01-01T00:00:00"}, "schema_violation"),  # no zone
        ({"tickers": ["aapl"]}, "schema_violation"),
        ({"id": "has spaces in it"}, "schema_violation"),
        ({"title": "<script>x</script>"}, "schema_violation"),  # empty once cleaned
    ],
)
def test_field_level_violations(changes: dict[str, object], code: str) -> None:
    result = parse_message(_valid(**changes), **LIMITS)
    assert isinstance(result, Rejection) and result.code == code, result


def test_worker_side_cleaning_removes_html_a_producer_left_in() -> None:
    result = parse_message(_valid(title="Fed <i>holds</i> rates", body="<script>evil()</script>ok"), **LIMITS)
    assert isinstance(result, NewsItem) and result.title == "Fed holds rates" and result.body == "ok"


def test_company_names_add_their_tickers_after_the_cashtags() -> None:
    item = make_item(
        source="feed",
        title="$F slips as Bank of America downgrades Tesla; Apple's supplier warns",
        body="Applesauce makers and the Americas unaffected. Tesla again.",
    )
    assert item.tickers == ["F", "BAC", "TSLA", "AAPL"]  # no AAPL from 'Applesauce', no repeats
    assert company_tickers("a note on $TSLA") == []  # a cashtag is not a company name


def test_a_message_larger_than_any_valid_item_is_refused_before_decoding() -> None:
    limit = 6 * (LIMITS["max_title_chars"] + LIMITS["max_body_chars"]) + 64 * 1024
    # Invalid UTF-8 too: the size is checked first, so nothing of it is decoded.
    result = parse_message(b"\xff" * (limit + 1), **LIMITS)
    assert isinstance(result, Rejection) and result.code == "message_too_large"
    assert str(limit + 1) in result.reason
    just_under = parse_message(b"\xff" * limit, **LIMITS)
    assert isinstance(just_under, Rejection) and just_under.code == "invalid_utf8"
