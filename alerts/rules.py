"""Alert rules are data: which series, which detector, thresholds, severity, receivers.

The shipped rules live in `alerts/rules.yaml`; rows of the `alert_rules` table override them by
name (an operator adds, changes or disables a rule with `finsent alerts rules ...`, no restart:
the scan reads the set on every run). A rule's text is validated here, once, so the scan never
meets a half-valid rule.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerts.detectors import DETECTORS, DetectorSpec, Direction
from alerts.series import METRICS, TICKER, SeriesQuery
from connectors.db.schema import AlertRule, utcnow
from connectors.errors import UserInputError

BUILTIN_RULES = Path(__file__).with_name("rules.yaml")
SEVERITIES = ("info", "warning", "critical")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _|&.-]{0,99}$")  # safe inside a JSON path in SQL
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class RuleError(UserInputError):
    """A rule that cannot be used, with what is wrong in it."""


def parse_duration(value: object) -> float:
    """'90s', '30m', '2h', '1d' or a number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise RuleError(f"not a duration: {value!r} (use e.g. 90s, 30m, 2h, 1d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class Rule:
    name: str
    dimension: str
    metric: str
    bucket_s: float
    baseline_s: float
    detector: str = "robust_z"
    fire_above: float = 4.0
    resolve_below: float = 2.0
    direction: Direction = "up"
    min_volume: int = 5
    for_s: float = 0.0
    keep_firing_for_s: float = 600.0
    repeat_interval_s: float = 4 * 3600.0
    severity: str = "warning"
    receivers: tuple[str, ...] = ("email", "webhook")
    group_by: tuple[str, ...] = ("rule",)
    keys: tuple[str, ...] = ()
    ewma_lambda: float = 0.3
    cusum_k: float = 0.5
    sentiment_instruction: str = "sentiment"
    negative_label: str = "negative"
    positive_label: str = "positive"
    description: str = ""
    enabled: bool = True
    detector_spec: DetectorSpec = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise RuleError(f"rule {self.name!r}: " + "; ".join(problems))
        object.__setattr__(self, "detector_spec", DetectorSpec(self.detector, self.ewma_lambda, self.cusum_k))

    def _problems(self) -> list[str]:
        problems = []
        if not _NAME.match(self.name):
            problems.append("name must be letters, digits, '_', '.', '-' (at most 100)")
        if self.dimension != TICKER and not _NAME.match(self.dimension):
            problems.append(f"dimension must be 'ticker' or an instruction name, not {self.dimension!r}")
        if self.metric not in METRICS:
            problems.append(f"metric must be one of {', '.join(METRICS)}")
        if self.detector not in DETECTORS:
            problems.append(f"detector must be one of {', '.join(DETECTORS)}")
        if self.direction not in ("up", "down", "both"):
            problems.append("direction must be up, down or both")
        if self.bucket_s < 1:
            problems.append("bucket must be at least 1s")
        if self.baseline_s < 2 * self.bucket_s:
            problems.append("baseline must cover at least two buckets")
        elif self.baseline_s / self.bucket_s > 5000:
            problems.append("baseline is more than 5000 buckets")
        if self.resolve_below > self.fire_above:
            problems.append("resolve_below must not exceed fire_above (it is the hysteresis band)")
        if self.severity not in SEVERITIES:
            problems.append(f"severity must be one of {', '.join(SEVERITIES)}")
        if self.min_volume < 0 or self.for_s < 0 or self.keep_firing_for_s < 0:
            problems.append("min_volume, for and keep_firing_for must not be negative")
        if self.repeat_interval_s <= 0:
            problems.append("repeat_interval must be positive")
        if not 0 < self.ewma_lambda <= 1 or self.cusum_k < 0:
            problems.append("ewma_lambda must be in (0, 1] and cusum_k >= 0")
        unknown_groups = set(self.group_by) - {"rule", "severity", "dimension", "metric", "key"}
        if unknown_groups:
            problems.append(
                f"group_by may use rule, severity, dimension, metric, key; not {sorted(unknown_groups)}"
            )
        for label in (self.negative_label, self.positive_label, self.sentiment_instruction):
            if not _LABEL.match(label):
                problems.append(f"not a usable label or instruction name: {label!r}")
        return problems

    @property
    def points(self) -> int:
        return round(self.baseline_s / self.bucket_s) + 1

    def series_query(self) -> SeriesQuery:
        return SeriesQuery(
            dimension=self.dimension,
            bucket_s=int(self.bucket_s),
            points=self.points,
            sentiment_instruction=self.sentiment_instruction,
            negative_label=self.negative_label,
            positive_label=self.positive_label,
        )

    def to_spec(self) -> dict[str, Any]:
        """The rule as the YAML/JSON mapping it can be read back from."""
        spec = asdict(self)
        spec.pop("detector_spec", None)
        for key in ("receivers", "group_by", "keys"):
            spec[key] = list(spec[key])
        return spec


_RENAMED = {
    "bucket": "bucket_s",
    "baseline": "baseline_s",
    "for": "for_s",
    "keep_firing_for": "keep_firing_for_s",
    "repeat_interval": "repeat_interval_s",
}
_DURATIONS = {"bucket_s", "baseline_s", "for_s", "keep_firing_for_s", "repeat_interval_s"}


def rule_from_spec(spec: dict[str, Any]) -> Rule:
    if not isinstance(spec, dict):
        raise RuleError(f"a rule must be a mapping, not {type(spec).__name__}")
    known = {f.name for f in fields(Rule) if f.init}
    values: dict[str, Any] = {}
    for raw_key, value in spec.items():
        key = _RENAMED.get(str(raw_key), str(raw_key))
        if key not in known:
            raise RuleError(f"rule {spec.get('name')!r}: unknown field {raw_key!r}")
        if key in _DURATIONS:
            value = parse_duration(value)
        elif key in ("receivers", "group_by", "keys"):
            value = tuple(str(v) for v in ([value] if isinstance(value, str) else value or []))
        values[key] = value
    missing = {"name", "dimension", "metric", "bucket_s", "baseline_s"} - values.keys()
    if missing:
        raise RuleError(f"rule {spec.get('name')!r}: missing {', '.join(sorted(missing))}")
    if values["metric"] == "mean_sentiment":
        values.setdefault("direction", "down")
    try:
        return Rule(**values)
    except TypeError as exc:
        raise RuleError(f"rule {spec.get('name')!r}: {exc}") from None


def read_rules_file(path: Path) -> list[Rule]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RuleError(f"cannot read rules from {path}: {exc}") from None
    specs = document.get("rules", []) if isinstance(document, dict) else document
    if not isinstance(specs, list):
        raise RuleError(f"{path}: expected a list of rules (or a mapping with 'rules:')")
    rules = [rule_from_spec(spec) for spec in specs]
    names = [rule.name for rule in rules]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RuleError(f"{path}: rule names repeat: {', '.join(duplicates)}")
    return rules


def builtin_rules() -> list[Rule]:
    return read_rules_file(BUILTIN_RULES)


def current_rules(engine: Engine) -> list[Rule]:
    """Shipped rules overridden by the table's rows (by name); disabled ones included."""
    merged = {rule.name: rule for rule in builtin_rules()}
    with Session(engine) as session:
        for row in session.scalars(select(AlertRule)):
            spec = dict(row.spec)
            spec["enabled"] = row.enabled
            merged[row.name] = rule_from_spec(spec)
    return sorted(merged.values(), key=lambda rule: rule.name)


def upsert_rule(engine: Engine, rule: Rule) -> None:
    with Session(engine) as session, session.begin():
        row = session.get(AlertRule, rule.name)
        spec = rule.to_spec()
        if row is None:
            session.add(AlertRule(name=rule.name, spec=spec, enabled=rule.enabled))
        else:
            row.spec, row.enabled, row.updated_at = spec, rule.enabled, utcnow()


def set_enabled(engine: Engine, name: str, enabled: bool) -> Rule:
    by_name = {rule.name: rule for rule in current_rules(engine)}
    if name not in by_name:
        raise RuleError(f"no rule named {name!r}; `finsent alerts rules list` shows them")
    spec = by_name[name].to_spec()
    spec["enabled"] = enabled
    rule = rule_from_spec(spec)
    upsert_rule(engine, rule)
    return rule
