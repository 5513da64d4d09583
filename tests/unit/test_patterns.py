import numpy as np
import pytest
import regex
from hypothesis import example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from regex import _regex_core as core

from imagestudio.labeling import patterns as patterns_module
from imagestudio.labeling.patterns import (
    BUILDERS,
    OPERATORS,
    PATTERN_BASE,
    PATTERN_SCHEMAS,
    PatternError,
    _calls_a_group,
    pattern_scores,
    validate_pattern,
)

TEXTS = np.array(["A tabby Cat on a mat", "catalogue of dogs", None, "", "two cats", 42], dtype=object)


def scores(values, **config):
    return pattern_scores(values, validate_pattern(config)).tolist()


def test_keyword_any_all_case_and_whole_word():
    assert scores(TEXTS, field="f", builder="keyword", words=["cat"]) == [1, 0, 0, 0, 0, 0]
    assert scores(TEXTS, field="f", builder="keyword", words=["cat"], whole_word=False) == [1, 1, 0, 0, 1, 0]
    assert scores(TEXTS, field="f", builder="keyword", words=["Cat"], case_sensitive=True) == [1, 0, 0, 0, 0, 0]
    assert scores(TEXTS, field="f", builder="keyword", words=["cat", "dogs"]) == [1, 1, 0, 0, 0, 0]
    assert scores(TEXTS, field="f", builder="keyword", words=["cat", "mat"], mode="all") == [1, 0, 0, 0, 0, 0]
    assert scores(TEXTS, field="f", builder="keyword", words=["a.b"]) == [0, 0, 0, 0, 0, 0]  # escaped


def test_regex_numeric_length_and_empty():
    assert scores(TEXTS, field="f", builder="regex", pattern=r"^cat|\d+") == [0, 1, 0, 0, 0, 1]
    numbers = np.array([1, 2.5, "3", None, "x", True], dtype=object)
    assert scores(numbers, field="f", builder="numeric", op=">=", value=2.5) == [0, 1, 1, 0, 0, 0]
    assert scores(numbers, field="f", builder="numeric", op="between", value=[1, 2.5]) == [1, 1, 0, 0, 0, 0]
    assert scores(numbers, field="f", builder="numeric", op="=", value=3) == [0, 0, 1, 0, 0, 0]
    assert scores(TEXTS, field="f", builder="length", op=">", value=8) == [1, 1, 0, 0, 0, 0]
    assert scores(TEXTS, field="f", builder="empty") == [0, 0, 1, 1, 0, 0]


@pytest.mark.parametrize("config, field", [
    ({"builder": "keyword", "words": ["a"]}, "field"),
    ({"field": "f", "builder": "fuzzy"}, "builder"),
    ({"field": "f", "builder": "keyword", "words": []}, "words"),
    ({"field": "f", "builder": "keyword", "words": ["a"], "mode": "most"}, "mode"),
    ({"field": "f", "builder": "regex", "pattern": "(unclosed"}, "pattern"),
    ({"field": "f", "builder": "regex", "pattern": "a" * 1001}, "pattern"),
    ({"field": "f", "builder": "regex", "pattern": r"(?V0)(a)\1"}, "pattern"),  # flags at odds: a ValueError
    ({"field": "f", "builder": "regex", "pattern": r"(?u)(?a)(a)\1"}, "pattern"),
    ({"field": "f", "builder": "numeric", "op": "~", "value": 1}, "op"),
    ({"field": "f", "builder": "numeric", "op": "<", "value": "1"}, "value"),
    ({"field": "f", "builder": "numeric", "op": "between", "value": [3, 1]}, "value"),
    ({"field": "f", "builder": "numeric", "op": "<", "value": float("nan")}, "value"),
])
def test_bad_configs(config, field):
    with pytest.raises(PatternError) as raised:
        validate_pattern(config)
    assert raised.value.field == field


def test_classic_catastrophic_regex_runs_in_linear_time_on_re2():
    config = validate_pattern({"field": "f", "builder": "regex", "pattern": r"(a|aa)+$"})
    texts = np.array(["a" * 60 + "b", "aaaa"] * 1000, dtype=object)
    assert pattern_scores(texts, config, budget=5).tolist() == [0, 1] * 1000


def test_backtracking_only_patterns_are_stopped_by_the_time_budget():
    config = validate_pattern({"field": "f", "builder": "regex", "pattern": r"(a|aa)+(?=c)"})  # lookahead: no RE2
    evil = np.array(["a" * 60 + "b"] * 3, dtype=object)
    with pytest.raises(PatternError, match="too long"):
        pattern_scores(evil, config, budget=0.2)
    backreference = validate_pattern({"field": "f", "builder": "regex", "pattern": r"(\w)\1"})
    assert pattern_scores(np.array(["book", "cat"], dtype=object), backreference).tolist() == [1, 0]


def test_keywords_are_bounded_in_length_and_scans_in_time(monkeypatch):
    from imagestudio.labeling import patterns

    with pytest.raises(patterns.PatternError):
        patterns.validate_pattern({"field": "caption", "builder": "keyword", "words": ["a" * (patterns.MAX_WORD + 1)]})
    config = patterns.validate_pattern({"field": "caption", "builder": "keyword", "words": ["cat"]})
    texts = ["a cat"] * (patterns.SCAN_CHECK_EVERY * 2)
    assert patterns.pattern_scores(texts, config).sum() == len(texts)
    monkeypatch.setattr(patterns, "SCAN_BUDGET_SECONDS", -1.0)  # a scan already past its budget stops at once
    for scanned in (config, patterns.validate_pattern({"field": "caption", "builder": "regex", "pattern": "c.t"})):
        with pytest.raises(patterns.PatternError, match="takes too long"):
            patterns.pattern_scores(texts, scanned)


@pytest.mark.parametrize("config", [{"field": "f", "builder": "keyword", "words": ["cat"]},
                                    {"field": "f", "builder": "regex", "pattern": "c.t"}])
def test_a_scan_of_few_long_texts_reads_the_clock_as_it_goes(monkeypatch, config):
    """The clock was read once per 2000 texts, so five 200,000-character captions ran far past the budget."""
    from imagestudio.labeling import patterns

    reads = []

    class Clock:  # a second passes at every look
        @staticmethod
        def monotonic():
            reads.append(None)
            return float(len(reads))

    monkeypatch.setattr(patterns, "time", Clock)
    texts = ["a" * patterns.SCAN_CHECK_CHARS] * 50
    with pytest.raises(PatternError, match="takes too long"):
        pattern_scores(texts, validate_pattern(config))
    assert len(reads) <= patterns.SCAN_BUDGET_SECONDS + 2  # stopped at the first look past the deadline


@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.integers(0, 30), max_size=40), check_chars=st.integers(1, 40))
def test_a_scan_searches_every_text_once_whatever_the_check_points(lengths, check_chars):
    from imagestudio.labeling import patterns

    texts = [("ab" * 20)[:n] + ("c" if n % 3 == 0 else "") for n in lengths]
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(patterns, "SCAN_CHECK_CHARS", check_chars)
        patched.setattr(patterns, "_MIN_TEXT_COST", 1)
        config = validate_pattern({"field": "f", "builder": "regex", "pattern": "bc"})
        assert pattern_scores(texts, config).tolist() == [float(text.endswith("bc")) for text in texts]


_maybe = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True), st.text(max_size=4),
                   st.lists(st.one_of(st.integers(-2, 2), st.text(max_size=3)), max_size=3))
_configs = st.fixed_dictionaries({"builder": st.sampled_from([*BUILDERS, "fuzzy"])}, optional={
    "field": st.one_of(st.text(max_size=3), _maybe), "words": _maybe, "mode": st.sampled_from(["any", "all", "x"]),
    "case_sensitive": _maybe, "whole_word": _maybe, "pattern": st.one_of(st.text(alphabet="ab()|*", max_size=5), _maybe),
    "op": st.sampled_from([*OPERATORS, "~"]), "value": _maybe})


@settings(max_examples=400, deadline=None)
@given(_configs)
def test_the_published_schema_decides_every_refusal_but_those_past_it(config):
    """A config its builder's JSON Schema refuses is refused; one it accepts is accepted, unless a check past the
    schema refuses it (a regex that does not compile, a non-finite number, an unordered [low, high])."""
    schema = PATTERN_SCHEMAS.get(config["builder"], PATTERN_BASE)
    try:
        validate_pattern(config)
        refused = None
    except PatternError as exc:
        refused = exc.field
    if not Draft202012Validator(schema).is_valid(config):
        assert refused in schema["properties"]
    else:
        assert refused in (None, "pattern", "value")


def stands_alone(word, text, case_sensitive):
    """The definition, by brute force: an occurrence with no word character just before or just after it."""
    if not case_sensitive:
        word, text = word.casefold(), text.casefold()
    touches = lambda char: char.isalnum() or char == "_"  # noqa: E731  (Python's \w, for str)
    return any(text.startswith(word, start) and not (start and touches(text[start - 1]))
               and not (start + len(word) < len(text) and touches(text[start + len(word)]))
               for start in range(len(text)))


WORDS = st.text(alphabet="ab_1+#$. é🐱", min_size=1, max_size=4).map(str.strip).filter(bool)  # words are stripped


@settings(max_examples=300)
@given(word=WORDS, text=st.text(alphabet="ab_1+#$. é🐱", max_size=12))
def test_a_whole_word_stands_alone_whatever_its_characters(word, text):
    assert scores(np.array([text], dtype=object), field="f", builder="keyword", words=[word],
                  case_sensitive=True) == [float(stands_alone(word, text, True))]


def test_whole_words_that_begin_or_end_with_symbols():
    text = np.array(["I write C++ and C# daily, costs $5 🐱", "C++11 and #C"], dtype=object)
    for word in ("C++", "C#", "$5", "🐱", "write"):
        assert scores(text, field="f", builder="keyword", words=[word]) == [1, 0], word


def _parsed_calls_a_group(pattern):
    """The oracle: whether the `regex` module's own parser finds a group call (CallGroup) in the pattern."""

    regex.compile(pattern, regex.VERSION1)  # a pattern the module refuses (the parser alone stops at a stray ")")
    source = core.Source(pattern)
    stack, seen = [core._parse_pattern(source, core.Info(regex.VERSION1, source.char_type, {}))], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, core.CallGroup):
            return True
        stack.extend(node if isinstance(node, list | tuple) else vars(node).values() if isinstance(node, core.RegexBase)
                     else ())
    return False


# calls inside sets, comments and verbose-mode comments (literal or not, the parser decides), after escapes
_TRICKY_CALLS = (r"[(?R)]", r"[](?R)]", r"[^](?R)]", r"[[a](?R)]a]", r"\(?R)", r"\\(?R)", r"(?#(?R))", r"[a]](?R)",
                 r"(a)[\](?1)]", "(?x)#[\n(?R)", "(?x)#[\n(?1)(a)", "(?x)#(?#\n(?R)", "(?x)a # (?R)\n")


def _with_examples(test):
    for pattern in _TRICKY_CALLS:
        test = example(pattern)(test)
    return test


@settings(max_examples=1500, deadline=None)
@_with_examples
@given(st.lists(st.sampled_from(["(?R)", "(?0)", "(?1)", "(?-1)", "(?+1)", "(?&x)", "(?P>x)", "(?P<x>a)", "(a)", "(",
                                  ")", "[", "]", "^", "\\", "(?#", "a", "|", "?", "--", "(?x)", "#", "\n", " "]),
                max_size=10).map("".join))
def test_every_group_call_the_regex_parser_finds_is_refused(pattern):
    """Recursion and subroutine calls are refused (a search of one held 570 MB): whatever the escapes, sets,
    comments and modes around them, every call the `regex` module's parser finds is refused (and a literal one in
    a set or comment too: the check does not track the parser's modes)."""
    try:
        expected = _parsed_calls_a_group(pattern)
    except regex.error:  # not a pattern the module compiles: validate_pattern refuses it anyway
        return
    assert _calls_a_group(pattern) >= expected


@pytest.mark.parametrize("pattern, refused", [(r"\(?R)", False), (r"\\\(?R)", False), (r"\\(?R)", True),
                                              (r"(?P<x>a)(?P=x)", False), (r"(a)\g<1>", False)])
def test_an_escaped_call_or_a_backreference_is_no_call(pattern, refused):
    assert _calls_a_group(pattern) is refused


@pytest.mark.parametrize("pattern", [r"(?R)", r"(?=(?R))", r"(a)(?1)", r"(a)(?-1)", r"(?<x>a(?&x)?)", r"(?P<x>a(?P>x)?)"])
def test_recursive_patterns_are_refused_before_they_run(pattern):
    with pytest.raises(PatternError, match="calls a group") as raised:
        validate_pattern({"field": "f", "builder": "regex", "pattern": pattern})
    assert raised.value.field == "pattern"


def test_patterns_nested_past_the_parser_and_searches_out_of_memory_are_pattern_errors(monkeypatch):
    deep = "(" * 450 + r"a\1" + ")" * 450  # a backreference: the backtracking engine, whose parser recurses
    with pytest.raises(PatternError, match="too deeply"):
        validate_pattern({"field": "f", "builder": "regex", "pattern": deep})
    config = validate_pattern({"field": "f", "builder": "regex", "pattern": r"(\w)\1"})

    class Exhausting:
        def search(self, text, timeout):
            raise MemoryError

    monkeypatch.setattr(patterns_module, "compile_regex", lambda config: (Exhausting(), False))
    with pytest.raises(PatternError, match="more memory") as raised:
        pattern_scores(np.array(["book"], dtype=object), config)
    assert raised.value.field == "pattern"
