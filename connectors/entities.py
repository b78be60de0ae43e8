"""Who an item is about: companies from a directory, and the other things news names.

Companies come from the SEC's list of listed companies (ticker, registered name; a file in
FINSENT_DATA_DIR, never copied into the project) plus the project's aliases
(`connectors/companies.yaml`: names news uses that the list lacks, such as Google or Facebook).
A registered name is matched as news writes it: legal suffixes dropped, case and punctuation
folded ("TESLA, INC." is matched by "Tesla"), and also without trailing business words
("CISCO SYSTEMS, INC." by "Cisco"). Tickers are matched as cashtags (`$AAPL`) and as exchange
mentions (`(NASDAQ: AAPL)`, `NYSE:F`), never bare: "ON", "ALL" and "IT" are tickers too.

Precision guards, each against a measured false positive:
- a name must be written as a proper noun (first and last word capitalised): "apple pie";
- a one-word name that news also uses as an ordinary word ("Target", "Gap", "Block", "Shell";
  `common_words.txt`) needs context: its ticker in the item, a legal suffix right after it, or a
  company cue word (shares, earnings, CEO...) next to it: "Target price raised" is not Target;
- names of two letters or fewer are not matched by name at all.

Entities that are not listed companies (a commodity, an index, a currency, a central bank, a
sector or "mid caps", a company the directory lacks) are taken from the text with `kind` other:
a gazetteer of market terms, "<word> stocks|shares|sector|funds" phrases, and runs of
capitalised words in sentence-case text (in Title Case text every word is capitalised, so runs
say nothing there). A quoted source at the end of a headline ("...: Anish Damania") is skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

ALIASES = Path(__file__).with_name("companies.yaml")
COMMON_WORDS = Path(__file__).with_name("common_words.txt")

COMPANY = "company"
OTHER = "other"

_TOKEN = re.compile(r"[A-Za-z0-9]+(?:&[A-Za-z0-9]+)*")
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:[.\-][A-Za-z]{1,2})?)\b")
_EXCHANGE = re.compile(
    r"\b(?:NASDAQ|Nasdaq|NYSE(?:\s+American|\s+Arca|\s+MKT)?|AMEX|OTC(?:QX|QB)?|TSXV?|LSE|ASX)"
    r"\s*:\s*([A-Z][A-Z0-9]{0,5}(?:[.\-][A-Z]{1,2})?)\b"
)
_STATE_SUFFIX = re.compile(r"\s*/[A-Za-z .]+/?\s*$")
# Words that end a registered name without being part of how news names the company.
_LEGAL = frozenset(
    [
        "inc",
        "incorporated",
        "corp",
        "corporation",
        "co",
        "company",
        "ltd",
        "limited",
        "plc",
        "llc",
        "lp",
        "l",
        "p",
        "nv",
        "n",
        "v",
        "sa",
        "s",
        "a",
        "ag",
        "se",
        "holdings",
        "holding",
        "group",
        "the",
    ]
)
# Trailing business words a shorter variant drops ("Cisco Systems" -> "Cisco").
_BUSINESS = frozenset(
    [
        "technologies",
        "technology",
        "systems",
        "semiconductor",
        "semiconductors",
        "platforms",
        "motor",
        "motors",
        "international",
        "industries",
        "enterprises",
        "communications",
        "pharmaceuticals",
        "therapeutics",
        "entertainment",
        "brands",
        "wholesale",
        "com",
    ]
)
# Registered names that are funds and products, not companies news writes about.
_NOT_COMPANIES = frozenset(["etf", "etn", "fund", "ishares", "spdr", "proshares", "direxion", "invesco"])
_CUES = frozenset(
    [
        "shares",
        "share",
        "stock",
        "stocks",
        "inc",
        "corp",
        "corporation",
        "plc",
        "ceo",
        "cfo",
        "chief",
        "earnings",
        "revenue",
        "revenues",
        "profit",
        "profits",
        "quarterly",
        "quarter",
        "q1",
        "q2",
        "q3",
        "q4",
        "results",
        "guidance",
        "nyse",
        "nasdaq",
        "buyback",
        "dividend",
        "ipo",
        "sales",
        "stores",
        "retailer",
        "analysts",
        "analyst",
        "downgrade",
        "downgrades",
        "downgraded",
        "upgrade",
        "upgrades",
        "upgraded",
        "outlook",
        "forecast",
        "investors",
        "shareholders",
        "layoffs",
        "acquisition",
        "acquire",
        "acquires",
        "buy",
        "buys",
        "sell",
        "sells",
        "bid",
        "takeover",
        "stake",
        "merger",
        "ticker",
    ]
)
_MAX_NAME_TOKENS = 6
_NOT_ENTITIES = frozenset(
    [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "q1",
        "q2",
        "q3",
        "q4",
        "fy",
        "rs",
        "cr",
        "us",
        "uk",
        "i",
        "we",
        "it",
    ]
)
# Market things news names that are not companies; matched case-insensitively, longest first.
_MARKET_TERMS = tuple(
    sorted(
        [
            "gold",
            "silver",
            "copper",
            "platinum",
            "palladium",
            "aluminium",
            "aluminum",
            "zinc",
            "nickel",
            "iron ore",
            "steel",
            "crude oil",
            "crude",
            "brent",
            "wti",
            "natural gas",
            "oil",
            "wheat",
            "corn",
            "soybeans",
            "sugar",
            "coffee",
            "cotton",
            "rupee",
            "dollar",
            "us dollar",
            "euro",
            "yen",
            "yuan",
            "pound",
            "sterling",
            "franc",
            "bitcoin",
            "ether",
            "ethereum",
            "nifty",
            "nifty50",
            "nifty 50",
            "sensex",
            "bank nifty",
            "s&p 500",
            "s&p",
            "dow",
            "dow jones",
            "nasdaq composite",
            "ftse",
            "ftse 100",
            "dax",
            "cac 40",
            "nikkei",
            "hang seng",
            "stoxx 600",
            "russell 2000",
            "vix",
            "fed",
            "federal reserve",
            "ecb",
            "european central bank",
            "rbi",
            "reserve bank",
            "boj",
            "bank of japan",
            "bank of england",
            "pboc",
            "opec",
            "imf",
            "world bank",
            "sebi",
            "sec",
            "treasuries",
            "treasury yields",
            "bond yields",
            "bonds",
            "gilts",
            "d-street",
            "dalal street",
            "wall street",
        ],
        key=len,
        reverse=True,
    )
)
_MARKET = re.compile(
    r"(?<![\w&])(" + "|".join(re.escape(t).replace(r"\ ", r"[\s\-]") for t in _MARKET_TERMS) + r")(?![\w&])",
    re.IGNORECASE,
)
_GROUP = re.compile(
    r"(?<![\w-])((?:(?:mid|small|large|micro)[\s\-]?caps?(?:\s+(?:stocks|funds|shares|index))?)"
    r"|(?:[A-Za-z][\w\-]*\s+(?:stocks|shares|sector|funds|bonds|equities|caps)))\b",
    re.IGNORECASE,
)
_DEMONYM = re.compile(r"(an|ese|ish|ch)$")  # European, Chinese, British, Dutch: regions' shares
_GROUP_STOP = frozenset(
    [
        "the",
        "its",
        "their",
        "his",
        "her",
        "our",
        "your",
        "this",
        "that",
        "these",
        "those",
        "all",
        "some",
        "most",
        "many",
        "its",
    ]
)


def canonical_ticker(written: str) -> str:
    """One spelling per ticker: upper case with a dot before the share class (`BRK.B`), as
    cashtags and the news item's `tickers` write it; the SEC list writes `BRK-B`."""
    return written.strip().upper().replace("-", ".")


@dataclass(frozen=True)
class Company:
    ticker: str
    name: str  # as news writes it: "Tesla", not "TESLA, INC."
    ambiguous: bool = False  # a one-word name that is also an ordinary word


@dataclass(frozen=True)
class Entity:
    """One thing an item names. `spans` are character offsets in the text it was found in (none
    when the entity was given, not found); the model pools the encoder's output over them."""

    text: str
    kind: str
    ticker: str | None = None
    spans: tuple[tuple[int, int], ...] = ()

    @property
    def found(self) -> bool:
        return bool(self.spans)


def fold(text: str) -> tuple[str, ...]:
    """Tokens lower-cased, punctuation dropped: the form names are compared in."""
    return tuple(token.lower() for token in _TOKEN.findall(text))


def _variants(title: str) -> list[tuple[str, ...]]:
    """How news may write a registered name: without legal suffixes, and also without trailing
    business words."""
    tokens = list(fold(_STATE_SUFFIX.sub("", title)))
    if _NOT_COMPANIES & set(tokens):
        return []
    while tokens and tokens[0] == "the":
        tokens.pop(0)
    while tokens and tokens[-1] in _LEGAL:
        tokens.pop()
    variants = [tuple(tokens)] if tokens else []
    short = list(tokens)
    while len(short) > 1 and short[-1] in _BUSINESS | _LEGAL:
        short.pop()
    if short and short != tokens:
        variants.append(tuple(short))
    return [v for v in variants if len("".join(v)) > 2]


def _display(tokens: tuple[str, ...], original: str) -> str:
    """The name in the case the registered title used, or Title Case when it was all capitals."""
    words = [w for w in _TOKEN.findall(original) if w.lower() in tokens]
    if original.isupper() or not words:
        return " ".join(t.capitalize() for t in tokens)
    return " ".join(words[: len(tokens)])


@dataclass
class CompanyDirectory:
    by_name: dict[tuple[str, ...], Company] = field(default_factory=dict)
    by_ticker: dict[str, Company] = field(default_factory=dict)

    def add(self, tokens: tuple[str, ...], company: Company, override: bool = False) -> None:
        if override or tokens not in self.by_name:
            self.by_name[tokens] = company
        self.by_ticker.setdefault(company.ticker, company)

    def ticker(self, written: str) -> Company | None:
        """A ticker as news writes it (`BRK.B`) or as the SEC lists it (`BRK-B`)."""
        return self.by_ticker.get(canonical_ticker(written))

    def __len__(self) -> int:
        return len(self.by_name)


def load_common_words(path: Path = COMMON_WORDS) -> frozenset[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def load_directory(
    sec_file: Path | None, aliases: Path = ALIASES, common_words: frozenset[str] | None = None
) -> CompanyDirectory:
    """The SEC list (in its order, which is by size: the first company keeps a shared name) and
    the aliases, which win over it. A missing SEC file leaves the aliases alone."""
    common = load_common_words() if common_words is None else common_words
    directory = CompanyDirectory()

    def ambiguous(tokens: tuple[str, ...]) -> bool:
        return len(tokens) == 1 and tokens[0] in common

    document = yaml.safe_load(aliases.read_text(encoding="utf-8")) or {}
    for ticker, names in document.items():
        for name in names:
            tokens = fold(str(name))
            if tokens:
                company = Company(canonical_ticker(str(ticker)), str(name), ambiguous(tokens))
                directory.add(tokens, company, override=True)
    if sec_file is not None and sec_file.is_file():
        records = json.loads(sec_file.read_text(encoding="utf-8"))
        for record in records.values() if isinstance(records, dict) else records:
            title, ticker = str(record.get("title", "")), canonical_ticker(str(record.get("ticker", "")))
            if not title or not ticker:
                continue
            for tokens in _variants(title):
                directory.add(tokens, Company(ticker, _display(tokens, title), ambiguous(tokens)))
    return directory


@lru_cache(maxsize=4)
def cached_directory(sec_file: Path | None) -> CompanyDirectory:
    return load_directory(sec_file)


class EntityRecogniser:
    """`find(text, tickers)`: the entities of one item, first mention first, one per company."""

    def __init__(self, directory: CompanyDirectory, common_words: frozenset[str] | None = None) -> None:
        self.directory = directory
        self.common = load_common_words() if common_words is None else common_words

    def find(self, text: str, tickers: Sequence[str] = ()) -> list[Entity]:
        tokens = [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]
        known = {canonical_ticker(t) for t in tickers}
        companies: dict[str, tuple[str, list[tuple[int, int]]]] = {}  # ticker -> (surface, spans)

        def mention(ticker: str, surface: str, span: tuple[int, int]) -> None:
            companies.setdefault(ticker, (surface, []))[1].append(span)

        for pattern in (_CASHTAG, _EXCHANGE):
            for match in pattern.finditer(text):
                company = self.directory.ticker(match.group(1))
                ticker = company.ticker if company else canonical_ticker(match.group(1))
                known.add(ticker)
                mention(ticker, match.group(0).strip("() "), match.span())
        ticker_spans = [span for _, spans in companies.values() for span in spans]
        # A ticker mention's words are not names too: "NASDAQ: AAPL" is Apple, not Nasdaq Inc.
        taken = [any(s <= t[1] < e for s, e in ticker_spans) for t in tokens]
        for company, span in self._names(text, tokens, taken, known):
            mention(company.ticker, text[span[0] : span[1]], span)
        found = [
            Entity(surface, COMPANY, ticker, tuple(sorted(spans)))
            for ticker, (surface, spans) in companies.items()
        ]
        company_spans = [span for e in found for span in e.spans]
        found.extend(self._others(text, tokens, taken, company_spans))
        return sorted(found, key=lambda e: e.spans[0][0])

    def company_tickers(self, text: str) -> list[str]:
        """Tickers of the companies the text names by name (not by cashtag), first mention first."""
        tokens = [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]
        named = self._names(text, tokens, [False] * len(tokens), set())
        return list(dict.fromkeys(company.ticker for company, _ in named))

    def _names(
        self, text: str, tokens: list[tuple[str, int, int]], taken: list[bool], known: set[str]
    ) -> list[tuple[Company, tuple[int, int]]]:
        """Company names in the text, longest match first at each word; marks their words taken."""
        folded = [t[0].lower() for t in tokens]
        found: list[tuple[Company, tuple[int, int]]] = []
        i = 0
        while i < len(tokens):
            named = None if taken[i] else self._name_at(tokens, folded, i, known)
            if named is None:
                i += 1
                continue
            length, company = named
            found.append((company, (tokens[i][1], tokens[i + length - 1][2])))
            for j in range(i, i + length):
                taken[j] = True
            i += length
        return found

    def _name_at(
        self, tokens: list[tuple[str, int, int]], folded: list[str], i: int, known: set[str]
    ) -> tuple[int, Company] | None:
        if not (tokens[i][0][0].isupper() or tokens[i][0][0].isdigit()):
            return None
        for length in range(min(_MAX_NAME_TOKENS, len(tokens) - i), 0, -1):
            company = self.directory.by_name.get(tuple(folded[i : i + length]))
            if company is None:
                continue
            last = tokens[i + length - 1][0]
            if not (last[0].isupper() or last[0].isdigit()):
                continue
            if company.ambiguous and not (company.ticker in known or self._cued(folded, i, i + length)):
                continue
            return length, company
        return None

    @staticmethod
    def _cued(folded: list[str], start: int, end: int) -> bool:
        window = folded[max(0, start - 2) : start] + folded[end : end + 3]
        return bool(_CUES & set(window)) or (end < len(folded) and folded[end] in _LEGAL - {"the"})

    def _others(
        self,
        text: str,
        tokens: list[tuple[str, int, int]],
        taken: list[bool],
        company_spans: list[tuple[int, int]],
    ) -> list[Entity]:
        spans: list[tuple[int, int]] = []

        def free(start: int, end: int) -> bool:
            return all(end <= s or start >= e for s, e in [*company_spans, *spans])

        for pattern in (_GROUP, _MARKET):
            for match in pattern.finditer(text):
                if pattern is _GROUP and not self._is_group(match.group(1)):
                    continue
                if free(*match.span(1)):
                    spans.append(match.span(1))
        letters = [t for t in tokens if t[0][0].isalpha()]
        title_case = len(letters) >= 4 and sum(t[0][0].isupper() for t in letters) / len(letters) > 0.6
        if not title_case:
            spans.extend(self._proper_runs(text, tokens, taken, free))
        by_text: dict[str, list[tuple[int, int]]] = {}
        for start, end in sorted(spans):
            by_text.setdefault(_squash(text[start:end]).lower(), []).append((start, end))
        return [
            Entity(_squash(text[group[0][0] : group[0][1]]), OTHER, None, tuple(group))
            for group in by_text.values()
        ]

    def _is_group(self, phrase: str) -> bool:
        """ "European shares", "banking stocks", "mid caps" name a group of securities; "SpiceJet
        shares" names a company's (the proper-noun run takes "SpiceJet")."""
        words = phrase.split()
        first = words[0]
        if first.lower() in _GROUP_STOP or first.lower() in _NOT_ENTITIES:
            return False
        proper = first[0].isupper() and first.lower() not in self.common and not _DEMONYM.search(first)
        return not (proper and words[-1].lower() in {"shares", "stock", "stocks"})

    def _proper_runs(
        self, text: str, tokens: list[tuple[str, int, int]], taken: list[bool], free: object
    ) -> Iterable[tuple[int, int]]:
        """Runs of capitalised words ("Cairn India", "SpiceJet"), skipping a quoted source at the
        end of a headline and runs made only of ordinary words (a sentence's first word)."""
        source = _quoted_source_start(text)
        i = 0
        while i < len(tokens):
            word, start, _ = tokens[i]
            if taken[i] or not word[0].isupper():
                i += 1
                continue
            j = i
            while j + 1 < len(tokens) and not taken[j + 1] and tokens[j + 1][0][0].isupper():
                if text[tokens[j][2] : tokens[j + 1][1]].strip(" &-'") != "":
                    break  # punctuation between the words ends the run
                j += 1
            end = tokens[j][2]
            words = [t[0] for t in tokens[i : j + 1]]
            # An acronym ("BG", "HDFC") is a name even where its lower-case form is a word.
            ordinary = all(
                (w.lower() in self.common and not (w.isupper() and len(w) > 1)) or w.lower() in _NOT_ENTITIES
                for w in words
            )
            if not ordinary and start < source and callable(free) and free(start, end):
                yield start, end
            i = j + 1


def _quoted_source_start(text: str) -> int:
    """Where "...: Anish Damania, IDFC Securities" starts its quoted source (len(text) if none):
    a short capitalised tail after the last colon names who said it, not what it is about."""
    colon = text.rfind(":")
    if colon < 0:
        return len(text)
    tail = _TOKEN.findall(text[colon + 1 :])
    if 0 < len(tail) <= 6 and all(w[0].isupper() or w in {"and", "of", "&"} for w in tail):
        return colon
    return len(text)


def _squash(text: str) -> str:
    return " ".join(text.split())


def locate(text: str, entity: str) -> tuple[tuple[int, int], ...]:
    """Where a given entity string occurs in `text`: whole-word, case-insensitive, every place."""
    if not entity.strip():
        return ()
    pattern = r"(?<!\w)" + r"\s+".join(re.escape(part) for part in entity.split()) + r"(?!\w)"
    return tuple(m.span() for m in re.finditer(pattern, text, re.IGNORECASE))


MAX_ENTITIES = 50  # more than any headline names; a longer list is a producer's mistake
MAX_ENTITY_CHARS = 200


class EntityListError(ValueError):
    """A given entity list is unusable; the message says why."""


def check_entity_list(value: object) -> list[str]:
    """A given `entities` list, validated: 1 to MAX_ENTITIES non-empty strings of at most
    MAX_ENTITY_CHARS, without control characters; repeats are dropped, order kept."""
    if not isinstance(value, list):
        raise EntityListError(f"entities must be a list of strings, not {type(value).__name__}")
    if not value:
        raise EntityListError("entities is empty: leave it out to have the entities recognised")
    if len(value) > MAX_ENTITIES:
        raise EntityListError(f"entities has {len(value)} entries; at most {MAX_ENTITIES}")
    for index, entity in enumerate(value):
        if not isinstance(entity, str) or not entity.strip():
            raise EntityListError(f"entities[{index}] is not a non-empty string")
        if len(entity) > MAX_ENTITY_CHARS:
            raise EntityListError(
                f"entities[{index}] has {len(entity)} characters; at most {MAX_ENTITY_CHARS}"
            )
        if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in entity):
            raise EntityListError(f"entities[{index}] contains control characters")
    return list(dict.fromkeys(value))


RECOGNISED_CHARS = 2_000  # of an item's text: the model reads ~128 tokens; deeper mentions add little


def entities_of(
    recogniser: EntityRecogniser, text: str, tickers: Sequence[str], given: list[str] | None
) -> list[Entity]:
    """The entities to judge an item for: those `given` (kept exactly as written, each described
    by what the recogniser knows of it) or else those found in the text."""
    head = text[:RECOGNISED_CHARS]
    if given is None:
        return recogniser.find(head, tickers)
    found = {fold(e.text): e for e in recogniser.find(head, tickers)}
    described = []
    for name in given:
        known = found.get(fold(name))
        if known is None:
            alone = recogniser.find(name)
            whole = [e for e in alone if e.kind == COMPANY and e.spans == ((0, len(name)),)]
            known = whole[0] if whole else None
        described.append(
            Entity(name, known.kind if known else OTHER, known.ticker if known else None, locate(text, name))
        )
    return described
