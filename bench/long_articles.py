"""What a long scraped article costs the classifier, for each way of reading it.

Articles of about 500 words are built from the loopback site's pages (SEntFiN sentences). Timed
in one run on the same articles, with the executor the worker uses (the active model, else the
base encoder zero-shot; speed does not depend on the heads):
- headline + lead: the item's text cut at 128 tokens (what the worker does: `FINSENT_INFERENCE_MAX_LENGTH`);
- headline + first sentences at 64 tokens;
- headline + body at 256 and at 512 tokens (one longer pass);
- chunks: the headline with each ~100-word slice of the body, up to 4 passes per article, their
  probabilities averaged.
Also timed: finding tickers and company names in the whole body (`make_item`), which is how
entities deeper in the text are found whatever the classifier reads. The baseline is headline
only (what feed entries gave before pages were scraped).
Run with `python bench/long_articles.py`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from connectors.db.engine import make_engine  # noqa: E402
from connectors.db.migrate import upgrade  # noqa: E402
from connectors.news_item import make_item  # noqa: E402
from models import instruction_store  # noqa: E402
from models.encoder import configure_cpu_threads  # noqa: E402
from models.executor import ExecutorOptions, InstructionExecutor  # noqa: E402
from models.instructions import InstructionSet  # noqa: E402
from models.registry import ModelRegistry, base_executor  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402
from tests.news_site import NewsSite  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=200)
    args = parser.parse_args()
    settings = load_settings()
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    instructions = InstructionSet.of(
        [i for i in instruction_store.current(engine).instructions if i.name in {"sentiment", "topic"}]
    )
    registry = ModelRegistry(settings.models_dir, engine)
    version = registry.active_version()
    configure_cpu_threads(settings.inference_cpu_threads)
    base = ExecutorOptions(device="cuda" if torch.cuda.is_available() else "cpu", precision="fp32")

    def load(max_length: int) -> InstructionExecutor:
        options = replace(base, max_length=max_length)
        return (
            registry.load(version, options)
            if version
            else base_executor(settings.encoder, options, settings.cache_dir)
        )

    site = NewsSite(settings.data_dir, ["127.0.0.2"], pages_per_host=args.articles * 4, faults=False)
    pages = list(site.pages.values())
    articles = [
        (pages[i].title, "\n".join(p for page in pages[i : i + 4] for p in page.paragraphs))
        for i in range(0, 4 * args.articles, 4)
    ]
    words = sum(len(body.split()) for _t, body in articles) / len(articles)
    print(
        f"{len(articles)} articles of {words:.0f} words on average; {os.cpu_count()} cores; "
        f"model {version or 'base zero-shot'}"
    )

    def timed(name: str, executor: InstructionExecutor, texts: list[str], per_article: float = 1.0) -> float:
        executor.classify(texts[:32], instructions)
        started = time.perf_counter()
        executor.classify(texts, instructions)
        rate = len(texts) / per_article / (time.perf_counter() - started)
        print(f"{name:44} {rate:8.1f} articles/s")
        return rate

    short = load(128)
    headline = timed("baseline: headline only", short, [t for t, _b in articles])
    timed("headline + first sentences (64 tokens)", load(64), [f"{t}. {b}" for t, b in articles])
    lead = timed("headline + lead (128 tokens, the default)", short, [f"{t}. {b}" for t, b in articles])
    for length in (256, 512):
        timed(f"headline + body ({length} tokens)", load(length), [f"{t}. {b}" for t, b in articles])
    chunks = []
    for title, body in articles:
        tokens = body.split()
        chunks += [f"{title}. {' '.join(tokens[i : i + 100])}" for i in range(0, min(len(tokens), 400), 100)]
    timed("chunks (4 x ~100 words, averaged)", short, chunks, per_article=len(chunks) / len(articles))
    started = time.perf_counter()
    for title, body in articles:
        make_item(source="bench", title=title, body=body)
    entity_ms = (time.perf_counter() - started) / len(articles) * 1000
    started = time.perf_counter()
    for title, _body in articles:
        make_item(source="bench", title=title)
    title_ms = (time.perf_counter() - started) / len(articles) * 1000
    print(
        f"tickers and company names over the whole body: {entity_ms:.2f} ms per article "
        f"({title_ms:.2f} ms headline only)"
    )
    print(f"headline + lead runs at {lead / headline:.2f}x the headline-only baseline")


if __name__ == "__main__":
    main()
