"""Main-text extraction: quality (word precision/recall against each page's known body) and speed.

Pages come from the tests' loopback news site (tests/news_site.py): article bodies built from
SEntFiN headlines, in seven layouts with navigation, related boxes, comments, cookie banners, an
old table layout and AMP copies. Compared in one run, on the same pages:
- finsent: `connectors.scrape.extract.extract_page` (trafilatura precision mode, then balanced
  mode when that finds too little; title line and link-only lines dropped; page metadata);
- trafilatura in its default (balanced) mode, and in precision mode alone;
- jusText (the boilerplate remover trafilatura itself falls back on);
- the naive baseline: all text of <body>.
Scores are micro-averaged over pages: precision = shared words / extracted words, recall =
shared words / true words (bags of lower-cased words). Speed is pages per second on one core.
Run with `make bench-scrape` (with the end-to-end scrape benchmark) or alone:
`python bench/extraction_quality.py [--pages-per-host N]`.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import justext  # noqa: E402
import trafilatura  # noqa: E402
from lxml import html as lxml_html  # noqa: E402

from connectors.scrape.extract import extract_page, words  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402
from tests.news_site import NewsSite, Page  # noqa: E402

Extractor = Callable[[bytes], str]


def finsent(content: bytes) -> str:
    return extract_page(content, None, min_words=1).body


def trafilatura_default(content: bytes) -> str:
    return trafilatura.extract(content, include_comments=False, include_tables=False) or ""


def trafilatura_precision(content: bytes) -> str:
    return (
        trafilatura.extract(content, include_comments=False, include_tables=False, favor_precision=True) or ""
    )


def jus_text(content: bytes) -> str:
    paragraphs = justext.justext(content, justext.get_stoplist("English"))
    return "\n".join(p.text for p in paragraphs if not p.is_boilerplate)


def naive(content: bytes) -> str:
    tree = lxml_html.document_fromstring(content)
    for node in tree.xpath("//script|//style"):
        node.drop_tree()
    return str(tree.body.text_content()) if tree.body is not None else ""


EXTRACTORS: dict[str, Extractor] = {
    "finsent": finsent,
    "trafilatura (balanced)": trafilatura_default,
    "trafilatura (precision)": trafilatura_precision,
    "jusText": jus_text,
    "naive <body> text": naive,
}


def score(truth: str, got: str) -> tuple[int, int, int]:
    want, have = collections.Counter(words(truth)), collections.Counter(words(got))
    return sum((want & have).values()), sum(have.values()), sum(want.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages-per-host", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=3, help="passes over the pages for the speed figure")
    args = parser.parse_args()
    settings = load_settings()
    site = NewsSite(
        settings.data_dir,
        ["127.0.0.2", "127.0.0.3", "127.0.0.5", "127.0.0.13"],
        pages_per_host=args.pages_per_host,
    )
    pages: list[tuple[Page, bytes]] = [
        (p, site.render(p)) for p in site.pages.values() if p.kind in ("article", "amp")
    ]
    layouts = sorted({p.layout for p, _ in pages})
    print(f"{len(pages)} article pages, {len(layouts)} layouts, {os.cpu_count()} cores (extraction uses one)")
    header = f"{'extractor':26} {'precision':>9} {'recall':>7} {'F1':>6} {'pages/s':>8}  worst layout (F1)"
    print(header)
    print("-" * len(header))
    rates = {}
    for name, extractor in EXTRACTORS.items():
        totals = [0, 0, 0]
        per_layout: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
        for _page, content in pages:  # warm-up outside the timing (py3langid loads its model once)
            extractor(content)
        started = time.perf_counter()
        for _ in range(args.repeat):
            outputs = [extractor(content) for _page, content in pages]
        elapsed = time.perf_counter() - started
        for (page, _content), got in zip(pages, outputs, strict=True):
            counts = score(page.body, got)
            for i in range(3):
                totals[i] += counts[i]
                per_layout[page.layout][i] += counts[i]

        def f1(c: list[int]) -> tuple[float, float, float]:
            p, r = c[0] / max(1, c[1]), c[0] / max(1, c[2])
            return p, r, 2 * p * r / max(1e-9, p + r)

        p, r, f = f1(totals)
        worst = min(layouts, key=lambda layout: f1(per_layout[layout])[2])
        rates[name] = len(pages) * args.repeat / elapsed
        print(
            f"{name:26} {p:9.3f} {r:7.3f} {f:6.3f} {rates[name]:8.1f}  "
            f"{worst} ({f1(per_layout[worst])[2]:.3f})"
        )
    print(
        f"finsent runs at {rates['finsent'] / rates['trafilatura (balanced)']:.2f}x the speed of trafilatura "
        f"(balanced) and {rates['finsent'] / rates['naive <body> text']:.2f}x the naive baseline"
    )


if __name__ == "__main__":
    main()
