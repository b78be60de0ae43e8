"""Main-text and metadata extraction on the test site's pages, and `finsent extract` over saved files."""

from __future__ import annotations

import collections
import gzip
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.scrape.extract import extract_page, not_html_reason, words
from tests.conftest import FINSENT
from tests.news_site import NewsSite, Page


@pytest.fixture(scope="module")
def site(data_dir_module: Path) -> Iterator[NewsSite]:
    site = NewsSite(data_dir_module, ["127.0.0.2", "127.0.0.3"], pages_per_host=10)
    site.start()
    yield site
    site.stop()


def _overlap(truth: str, got: str) -> tuple[float, float]:
    want, have = collections.Counter(words(truth)), collections.Counter(words(got))
    common = sum((want & have).values())
    return common / max(1, sum(have.values())), common / max(1, sum(want.values()))


def _articles(site: NewsSite) -> list[Page]:
    return [p for p in site.pages.values() if p.kind in ("article", "amp")]


def test_article_pages_give_their_body_without_navigation_related_boxes_or_comments(site: NewsSite) -> None:
    pages = _articles(site)
    assert {p.layout for p in pages} >= {
        "jsonld_classic",
        "og_div_soup",
        "main_time",
        "table_legacy",
        "comments_heavy",
    }
    for page in pages:
        result = extract_page(site.render(page), site.url(page.host, page.path))
        precision, recall = _overlap(page.body, result.body)
        assert result.extracted, (page.layout, result.reason)
        assert recall >= 0.97, (page.layout, recall)
        assert precision >= 0.85, (page.layout, precision)
        body = " ".join(words(result.body))
        for noise in page.noise[3:6]:  # comments and "most read" boxes are other headlines
            if page.layout in ("jsonld_classic", "comments_heavy"):
                assert " ".join(words(noise)) not in body, (page.layout, noise)
        assert result.title == page.title, page.layout
        assert result.canonical_url == site.url(page.host, page.canonical_path or page.path)


def test_metadata_comes_from_json_ld_open_graph_meta_or_time(site: NewsSite) -> None:
    for page in _articles(site):
        result = extract_page(site.render(page), site.url(page.host, page.path))
        assert result.published_at == page.published_at, page.layout
        if page.layout in ("jsonld_classic", "og_div_soup", "main_time", "comments_heavy"):
            assert result.author == page.author, page.layout
        assert result.lang == "en", page.layout


def test_paywall_and_video_pages_are_not_extracted_and_say_why(site: NewsSite) -> None:
    kinds = {p.kind: p for p in site.pages.values()}
    paywall = extract_page(site.render(kinds["paywall"]))
    assert not paywall.extracted and paywall.code == "paywalled" and paywall.body == ""
    assert paywall.title == kinds["paywall"].title  # metadata survives: the item keeps its headline
    video = extract_page(site.render(kinds["video"]))
    assert not video.extracted and video.code == "no_main_text" and "fewer than 40" in (video.reason or "")


def test_non_html_content_is_recognised() -> None:
    assert "PDF" in (not_html_reason(b"%PDF-1.7 ...") or "")
    assert "PNG" in (not_html_reason(b"\x89PNG\r\n\x1a\n....") or "")
    assert not_html_reason(b"<html><body>x</body></html>", "application/json")
    assert not_html_reason(b"\x00\x01\x02binary") is not None
    assert not_html_reason(b"<!doctype html><p>fine</p>", "text/html") is None


def test_finsent_extract_writes_one_line_per_file_in_name_order(site: NewsSite, tmp_path: Path) -> None:
    pages_dir = tmp_path / "pages"
    saved = site.save_pages(pages_dir)
    assert any(name.endswith(".gz") for name in saved)
    (pages_dir / "zz-report.pdf").write_bytes(b"%PDF-1.7\n%binary")
    (pages_dir / "zz-broken.html.gz").write_bytes(gzip.compress(b"<html>")[:10])
    (pages_dir / "zz-empty.html").write_bytes(b"")
    (pages_dir / "sub").mkdir()
    (pages_dir / "sub" / "nested.html").write_bytes(site.render(next(iter(saved.values()))))
    out = tmp_path / "out.jsonl"
    result = subprocess.run(
        [FINSENT, "extract", "--input", str(pages_dir), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    names = [r["file"] for r in records]
    assert names == sorted(names) and "sub/nested.html" in names and len(names) == len(saved) + 4
    keys = {"file", "title", "body", "published_at", "canonical_url", "lang", "extracted"}
    assert all(keys <= set(r) for r in records)
    by_name = {r["file"]: r for r in records}
    for name, page in saved.items():
        record = by_name[name]
        if page.kind == "article":
            assert record["extracted"] is True and record["title"] == page.title
            assert _overlap(page.body, record["body"])[1] >= 0.97
            assert record["published_at"] == page.published_at.isoformat()
        else:
            assert record["extracted"] is False and record["reason"]
    for bad in ("zz-report.pdf", "zz-broken.html.gz", "zz-empty.html"):
        assert by_name[bad]["extracted"] is False and by_name[bad]["reason"], bad
    assert "PDF" in by_name["zz-report.pdf"]["reason"] and "gzip" in by_name["zz-broken.html.gz"]["reason"]
    assert json.loads(result.stdout.strip().splitlines()[-1])["files"] == len(records)
