"""Pattern labeling functions on one metadata field: keyword, regex, numeric comparison, length, empty.

A match scores 1 and a miss 0, so the LF's thresholds decide whether a miss votes ABSENT. Pure Python /
numpy, no Django. Regexes run on RE2 (linear time: no pattern can backtrack catastrophically); only a
pattern RE2 cannot express (backreferences, lookaround) falls back to the `regex` module, whose
per-call timeout refuses catastrophic ones instead of hanging a worker. Keywords are escaped literals.
"""

import math
import re
import time

import numpy as np
import re2
import regex

from .config_schemas import (  # noqa: F401  (the limits are the pattern LF's: re-exported)
    BUILDERS,
    MAX_FIELD,
    MAX_PATTERN,
    MAX_WORD,
    MAX_WORDS,
    OPERATORS,
    PATTERN_BASE,
    PATTERN_SCHEMAS,
    ConfigError,
    check,
)

REGEX_BUDGET_SECONDS = 1.5  # for one evaluation of a backtracking pattern over a whole split
SCAN_BUDGET_SECONDS = 10.0  # for one evaluation of a linear pattern (keywords, RE2) over the whole dataset
# A linear scan reads the clock before each run of texts of SCAN_CHECK_CHARS characters in all (one text when it
# is longer), a text counting at least _MIN_TEXT_COST: a few long texts are checked as often as many short ones,
# and at most SCAN_CHECK_EVERY texts pass between two looks.
SCAN_CHECK_CHARS = 20_000
SCAN_CHECK_EVERY = 2000
_MIN_TEXT_COST = SCAN_CHECK_CHARS // SCAN_CHECK_EVERY

PatternError = ConfigError  # a pattern's config or evaluation is unusable; `field` names the config key at fault


def _finite(value):
    if not math.isfinite(value):
        raise PatternError("'value' must be a finite number", field="value")
    return float(value)


def _comparison(config):
    """Beyond the schema: finite numbers, an ordered pair for between."""
    if config["op"] != "between":
        return {**config, "value": _finite(config["value"])}
    low, high = (_finite(v) for v in config["value"])
    if low > high:
        raise PatternError("'value' must be [low, high] with low <= high", field="value")
    return {**config, "value": [low, high]}


def _regex(config):
    compile_regex(config)
    return config


_BEYOND_SCHEMA = {"keyword": lambda config: {**config, "words": [w.strip() for w in config["words"]]},
                  "regex": _regex, "numeric": _comparison, "length": _comparison, "empty": lambda config: config}


def validate_pattern(config):
    """A normalized copy of a pattern config, or PatternError: the builder's JSON Schema (config_schemas), then
    what a schema cannot say."""
    builder = check(PATTERN_BASE, config)["builder"]
    return _BEYOND_SCHEMA[builder](check(PATTERN_SCHEMAS[builder], config))


def compile_regex(config):
    """(compiled pattern, linear): RE2 when it can express the pattern, else the `regex` module."""
    pattern = config["pattern"] if config.get("case_sensitive") else f"(?i){config['pattern']}"
    try:
        return re2.compile(pattern), True
    except re2.error:
        pass
    if _calls_a_group(config["pattern"]):
        raise PatternError("the regular expression calls a group ((?R), (?1), (?&name), (?P>name)): recursion and "
                           "subroutine calls are not supported", field="pattern")
    flags = regex.VERSION1 | (0 if config.get("case_sensitive") else regex.IGNORECASE)
    try:
        return regex.compile(config["pattern"], flags), False
    except (regex.error, ValueError, OverflowError) as exc:  # ValueError: flags at odds, e.g. (?V0) or (?u)(?a)
        raise PatternError(f"the regular expression does not compile: {exc}", field="pattern") from None
    except RecursionError:  # the module's parser recurses once a group level: a few hundred nested groups
        raise PatternError("the regular expression nests its groups too deeply", field="pattern") from None


# A recursion or subroutine call ((?R), (?0), (?1), (?-1), (?&name), (?P>name)) not escaped by a backslash: on the
# backtracking engine one search held 570 MB before a MemoryError. Refused wherever it stands, even in a set or a
# comment where it would be literal: telling those apart needs the parser's modes (a verbose-mode comment runs to
# the end of its line), and a literal "(?R)" is rare enough to write as "\\(?R)".
_GROUP_CALL = regex.compile(r"(?<!\\)(?:\\\\)*\(\?(?:R|[+-]?\d+|&|P>)")


def _calls_a_group(pattern):
    return _GROUP_CALL.search(pattern) is not None


def _keyword_patterns(config):
    flags = 0 if config["case_sensitive"] else re.IGNORECASE
    escaped = [re.escape(word) for word in config["words"]]
    # Standing alone: no word character touches it on either side. Not \b, which needs a word character at each
    # end of the word itself and so never matches "C++", "#tag" or "$5".
    wrap = (lambda w: rf"(?<!\w){w}(?!\w)") if config["whole_word"] else (lambda w: w)
    if config["mode"] == "any":
        return [re.compile(wrap("(?:" + "|".join(escaped) + ")"), flags)]
    return [re.compile(wrap(word), flags) for word in escaped]


def _compare(numbers, op, value):
    with np.errstate(invalid="ignore"):
        if op == "between":
            return (numbers >= value[0]) & (numbers <= value[1])
        return {"<": numbers < value, "<=": numbers <= value, "=": numbers == value, ">=": numbers >= value,
                ">": numbers > value}[op]


def _as_number(value):
    if isinstance(value, bool) or value is None:
        return math.nan
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def not_numbers(values) -> int:
    """How many present values a numeric pattern cannot read as a number (text, booleans): each is a miss."""
    return sum(1 for value in values if value is not None and math.isnan(_as_number(value)))


def _texts(values):
    return ["" if v is None else v if isinstance(v, str) else str(v) for v in values]


def pattern_scores(values, config, budget=REGEX_BUDGET_SECONDS):
    """1.0 where the pattern matches the field value, 0.0 where it does not (a missing field is a miss,
    except for `empty`, which it matches)."""
    builder = config["builder"]
    if builder == "empty":
        return np.array([v is None or (isinstance(v, str) and not v.strip()) for v in values], dtype=np.float32)
    if builder == "numeric":
        numbers = np.fromiter((_as_number(v) for v in values), dtype=np.float64, count=len(values))
        return _compare(numbers, config["op"], config["value"]).astype(np.float32)
    if builder == "length":
        lengths = np.fromiter((math.nan if v is None else len(v if isinstance(v, str) else str(v)) for v in values),
                              dtype=np.float64, count=len(values))
        return _compare(lengths, config["op"], config["value"]).astype(np.float32)
    texts = _texts(values)
    if builder == "keyword":
        matched = np.ones(len(texts), dtype=bool)
        deadline = time.monotonic() + SCAN_BUDGET_SECONDS
        for pattern in _keyword_patterns(config):
            matched &= _linear_scan(pattern, texts, deadline, "words")
        return matched.astype(np.float32)
    pattern, linear = compile_regex(config)
    if linear:
        return _linear_scan(pattern, texts, time.monotonic() + SCAN_BUDGET_SECONDS, "pattern").astype(np.float32)
    return _guarded_scores(pattern, texts, budget)


def _linear_scan(pattern, texts, deadline, field):
    """Where `pattern` matches; linear in each text, yet long texts times long patterns add up: the clock is
    read before every SCAN_CHECK_CHARS characters searched (see there) and the scan stops with a PatternError on
    `field` past the deadline."""
    hits = np.zeros(len(texts), dtype=bool)
    cost = np.maximum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)), _MIN_TEXT_COST)
    ends = np.cumsum(cost)
    start = 0
    while start < len(texts):
        if time.monotonic() > deadline:
            raise PatternError(f"the pattern takes too long over this field (over {SCAN_BUDGET_SECONDS:g} s): "
                               f"simplify the {field}, or use a field with shorter texts", field=field)
        # the texts that fit in the next SCAN_CHECK_CHARS characters, at least one
        stop = max(start + 1, int(np.searchsorted(ends, ends[start] - cost[start] + SCAN_CHECK_CHARS, side="right")))
        for i in range(start, stop):
            hits[i] = bool(texts[i]) and pattern.search(texts[i]) is not None
        start = stop
    return hits


def _guarded_scores(pattern, texts, budget):
    """A backtracking pattern: every search runs under what is left of the time budget."""
    hits = np.zeros(len(texts), dtype=bool)
    deadline = time.monotonic() + budget
    for i, text in enumerate(texts):
        if not text:
            continue
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            hits[i] = pattern.search(text, timeout=remaining) is not None
        except (MemoryError, RecursionError):
            raise PatternError("the pattern needs more memory than a search may take on this field: simplify it",
                               field="pattern") from None
        except TimeoutError:
            raise PatternError(
                f"the pattern takes too long (over {budget} s on this split); it uses backreferences or lookaround, "
                "which run on a backtracking engine, and may backtrack catastrophically: simplify it",
                field="pattern") from None
    return hits.astype(np.float32)
