"""Scraping: discovered links, news sitemaps, robots.txt, article fetching and main-text extraction.

Discovery (feeds, news sitemaps, APIs) turns what a publisher lists into `Link`s for the
`news.links` topic; a scraper turns one link into one news item or one recorded failure.

Part of `connectors`: imports nothing from `models`, `alerts` or `pipeline`.
"""
