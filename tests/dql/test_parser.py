"""DQL text -> AST: every construct, precedence, escapes, errors a person can act on, and limits
that keep hostile text a clean error."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dql import (
    And,
    Compare,
    Count,
    DQLError,
    DQLSyntaxError,
    Exists,
    Expr,
    Field,
    In,
    Like,
    Not,
    Or,
    Order,
    Quantified,
    Query,
    parse,
)
from dql.parser import MAX_DEPTH, MAX_LENGTH, all_of, any_of


def f(path: str) -> Field:
    return Field(tuple(path.split(".")))


def where(text: str) -> Expr | None:
    return parse(text).where


def syntax_error(text: str) -> DQLSyntaxError:
    with pytest.raises(DQLSyntaxError) as caught:
        parse(text)
    return caught.value


# ---------------------------------------------------------------------------------------------
# Constructs


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_comparisons(op: str) -> None:
    assert where(f"width {op} 640") == Compare(f("width"), op, 640)
    assert where(f"width{op}640") == Compare(f("width"), op, 640)


def test_field_paths() -> None:
    assert where("metadata.user.camera = 'x'") == Compare(f("metadata.user.camera"), "=", "x")
    assert where("createdAt > '2024-01-01'") == Compare(f("createdAt"), ">", "2024-01-01")
    assert where("_a1.B_2 = 1") == Compare(f("_a1.B_2"), "=", 1)
    # backticks quote a segment with any other characters, dots included
    assert where("metadata.user.`my key` = 1") == Compare(
        Field(("metadata", "user", "my key")), "=", 1
    )
    assert where("`a.b`.`c-d`.e = 1") == Compare(Field(("a.b", "c-d", "e")), "=", 1)
    assert where("`1st` = 1") == Compare(Field(("1st",)), "=", 1)


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("0", 0),
        ("42", 42),
        ("-7", -7),
        ("3.5", 3.5),
        ("-0.25", -0.25),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("2.5E-3", 0.0025),
        ("-1e+2", -100.0),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
        ("true", True),
        ("FALSE", False),
        ("Null", None),
        ('"text"', "text"),
        ("'text'", "text"),
        ('""', ""),
    ],
)
def test_values(literal: str, value: object) -> None:
    parsed = where(f"x = {literal}")
    assert parsed == Compare(f("x"), "=", value)
    assert type(parsed.value) is type(value)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r'"say \"hi\""', 'say "hi"'),
        (r"'it\'s'", "it's"),
        (r'"it\'s"', "it's"),
        (r"'say \"hi\"'", 'say "hi"'),
        (r'"back\\slash"', "back\\slash"),
        (r'"a\nb\tc\rd"', "a\nb\tc\rd"),
        (r'"\u00e9t\u00C9"', "étÉ"),
        (r'"\ud83d\ude00"', "\U0001f600"),
        (r'"a\/b"', "a/b"),
        (r'"\b\f"', "\b\f"),
        (r'"\b\f"', "\b\f"),
        ('"raw\nnewline"', "raw\nnewline"),
        ('"日本語 🐱"', "日本語 🐱"),
        ("'double \" inside'", 'double " inside'),
        ('"single \' inside"', "single ' inside"),
    ],
)
def test_string_escapes(literal: str, value: str) -> None:
    assert where(f"name = {literal}") == Compare(f("name"), "=", value)


def test_in_and_not_in() -> None:
    assert where('camera in ("front", "back")') == In(f("camera"), ("front", "back"))
    assert where("n in (1, 2.5, true, null, 'x')") == In(f("n"), (1, 2.5, True, None, "x"))
    assert where("n in ()") == In(f("n"), ())
    assert where("n not in (1)") == In(f("n"), (1,), negated=True)
    assert where("n NOT IN ()") == In(f("n"), (), negated=True)


def test_has_and_like() -> None:
    assert where("has metadata.user.reviewed") == Exists(f("metadata.user.reviewed"))
    assert where("not has x") == Not(Exists(f("x")))
    assert where('filename like "/train/**"') == Like(f("filename"), "/train/**")
    assert where("name like '*.jpg'") == Like(f("name"), "*.jpg")


def test_precedence_not_and_or() -> None:
    a, b, c, d = (Compare(f(n), "=", 1) for n in "abcd")
    assert where("a = 1 or b = 1 and c = 1") == Or((a, And((b, c))))
    assert where("a = 1 and b = 1 or c = 1") == Or((And((a, b)), c))
    assert where("(a = 1 or b = 1) and c = 1") == And((Or((a, b)), c))
    assert where("not a = 1 and b = 1") == And((Not(a), b))
    assert where("not (a = 1 and b = 1)") == Not(And((a, b)))
    assert where("not not a = 1") == Not(Not(a))
    assert where("a = 1 or not b = 1 and c = 1 or d = 1") == Or((a, And((Not(b), c)), d))


def test_canonical_flattening() -> None:
    a, b, c, d = (Compare(f(n), "=", 1) for n in "abcd")
    assert where("a = 1 and (b = 1 and c = 1)") == And((a, b, c))
    assert where("(a = 1 and b = 1) and (c = 1 and d = 1)") == And((a, b, c, d))
    assert where("a = 1 or (b = 1 or (c = 1 or d = 1))") == Or((a, b, c, d))
    assert where("((a = 1))") == a
    assert where("a = 1 and (b = 1 or c = 1)") == And((a, Or((b, c))))
    # not (x = 1) is kept as written, not rewritten to !=
    assert where("not (a = 1)") == Not(a)


def test_quantifiers() -> None:
    cat = Compare(f("label"), "=", "cat")
    assert where('annotations.any(label = "cat")') == Quantified("annotations", "any", cat)
    assert where("annotations.any()") == Quantified("annotations", "any", None)
    assert where('annotations.none(label = "cat")') == Quantified("annotations", "none", cat)
    assert where('tasks.any(id = 7 and status = "completed")') == Quantified(
        "tasks", "any", And((Compare(f("id"), "=", 7), Compare(f("status"), "=", "completed")))
    )
    assert where('annotations.count(type = "box") >= 2') == Count(
        "annotations", Compare(f("type"), "=", "box"), ">=", 2
    )
    assert where("annotations.count() = 0") == Count("annotations", None, "=", 0)
    assert where("annotations.ANY() and Annotations.Count() < 3") == And(
        (Quantified("annotations", "any"), Count("Annotations", None, "<", 3))
    )
    assert where("not annotations.any(not has label)") == Not(
        Quantified("annotations", "any", Not(Exists(f("label"))))
    )
    assert where("annotations.any(annotations.none())") == Quantified(
        "annotations", "any", Quantified("annotations", "none")
    )


def test_the_design_example() -> None:
    query = parse(
        'dir = "/train" and metadata.user.camera in ("front", "back") and width >= 640 and '
        'not has metadata.user.reviewed and annotations.any(label = "cat" and confidence < 0.5) '
        'and annotations.count(type = "box") >= 2 order by metadata.user.score desc'
    )
    assert query == Query(
        And(
            (
                Compare(f("dir"), "=", "/train"),
                In(f("metadata.user.camera"), ("front", "back")),
                Compare(f("width"), ">=", 640),
                Not(Exists(f("metadata.user.reviewed"))),
                Quantified(
                    "annotations",
                    "any",
                    And((Compare(f("label"), "=", "cat"), Compare(f("confidence"), "<", 0.5))),
                ),
                Count("annotations", Compare(f("type"), "=", "box"), ">=", 2),
            )
        ),
        (Order(f("metadata.user.score"), descending=True),),
    )


def test_order_by() -> None:
    assert parse("a = 1 order by name").order == (Order(f("name")),)
    assert parse("a = 1 ORDER BY name ASC, metadata.user.score DESC, createdAt").order == (
        Order(f("name")),
        Order(f("metadata.user.score"), descending=True),
        Order(f("createdAt")),
    )
    assert parse("order by createdAt desc") == Query(None, (Order(f("createdAt"), True),))


@pytest.mark.parametrize("text", ["", "   ", "\n\t  \r\n"])
def test_empty_query_selects_everything(text: str) -> None:
    assert parse(text) == Query()


def test_keywords_any_case() -> None:
    assert parse("A = TRUE AnD NOT b iN (NULL) oR HAS c Or d LiKe 'x' order BY e Desc") == Query(
        Or(
            (
                And((Compare(f("A"), "=", True), Not(In(f("b"), (None,))))),
                Exists(f("c")),
                Like(f("d"), "x"),
            )
        ),
        (Order(f("e"), True),),
    )


def test_keywords_as_field_names() -> None:
    # after a dot every word is a name
    assert where("metadata.not.has.order = 1") == Compare(f("metadata.not.has.order"), "=", 1)
    assert where("a.in in (1) and a.like like 'x'") == And(
        (In(f("a.in"), (1,)), Like(f("a.like"), "x"))
    )
    # as a first segment a keyword is quoted
    assert where("`not`.x = 1 and has `has` and `order` = 2 and `TRUE` = 3") == And(
        (
            Compare(f("not.x"), "=", 1),
            Exists(f("has")),
            Compare(f("order"), "=", 2),
            Compare(f("TRUE"), "=", 3),
        )
    )
    assert parse("order by `desc` desc").order == (Order(f("desc"), True),)
    # keywords are whole words
    assert where("notes = 1 and hash = 2 and android = 3 and nullable = 4") == And(
        (
            Compare(f("notes"), "=", 1),
            Compare(f("hash"), "=", 2),
            Compare(f("android"), "=", 3),
            Compare(f("nullable"), "=", 4),
        )
    )


@pytest.mark.parametrize(
    ("text", "column"),
    [("in = 1", 1), ("a = 1 and order = 2", 11), ("true = 1", 1), ("a = 1 or AND = 2", 10)],
)
def test_bare_keywords_are_not_fields(text: str, column: int) -> None:
    error = syntax_error(text)
    assert error.column == column
    assert error.expected[0] == "a condition"


def test_whitespace_and_lines() -> None:
    assert where("\n  a\n=\n1\n  and\tb\r\n!= 'x'\n") == And(
        (Compare(f("a"), "=", 1), Compare(f("b"), "!=", "x"))
    )


# ---------------------------------------------------------------------------------------------
# Syntax errors


@pytest.mark.parametrize(
    ("text", "line", "column", "found", "expected", "message"),
    [
        (
            "width > 3 and x > and y",
            1,
            19,
            "and",
            ("a value",),
            "line 1, column 19: expected a value after '>', found 'and'",
        ),
        (
            "width >",
            1,
            8,
            None,
            ("a value",),
            "line 1, column 8: expected a value after '>', found end of input",
        ),
        (
            "a = 1 and",
            1,
            10,
            None,
            ("a condition",),
            "line 1, column 10: expected a condition after 'and', found end of input",
        ),
        (
            "width 640",
            1,
            7,
            "640",
            ("an operator",),
            "line 1, column 7: expected an operator after 'width', found '640'",
        ),
        (
            "a = 1 b = 2",
            1,
            7,
            "b",
            ("and/or", "order by", "end of input"),
            "line 1, column 7: expected and/or, order by or end of input after '1', found 'b'",
        ),
        (
            "(a = 1",
            1,
            7,
            None,
            ("')'",),
            "line 1, column 7: expected ')' after '1', found end of input",
        ),
        (
            "a = 1)",
            1,
            6,
            ")",
            ("order by", "end of input"),
            "line 1, column 6: expected order by or end of input after '1', found ')'",
        ),
        (
            "x in (1, 2",
            1,
            11,
            None,
            ("','", "')'"),
            "line 1, column 11: expected ',' or ')' after '2', found end of input",
        ),
        (
            "x in 1",
            1,
            6,
            "1",
            ("'('",),
            "line 1, column 6: expected '(' after 'in', found '1'",
        ),
        (
            "x like 3",
            1,
            8,
            "3",
            ("a string",),
            "line 1, column 8: expected a string after 'like', found '3'",
        ),
        (
            "order name",
            1,
            7,
            "name",
            ("by",),
            "line 1, column 7: expected by after 'order', found 'name'",
        ),
        (
            "order by a b",
            1,
            12,
            "b",
            ("','", "asc/desc", "end of input"),
            "line 1, column 12: expected ',', asc/desc or end of input after 'a', found 'b'",
        ),
        (
            '"x" = 1',
            1,
            1,
            '"x"',
            ("a condition", "order by", "end of input"),
            "line 1, column 1: expected a condition, order by or end of input, found '\"x\"'",
        ),
        (
            "a = 'unterminated",
            1,
            5,
            "'",
            ("a value",),
            "line 1, column 5: expected a value after '=', found an unterminated string",
        ),
        (
            "a = 1 # comment",
            1,
            7,
            "#",
            ("and/or", "order by", "end of input"),
            "line 1, column 7: expected and/or, order by or end of input after '1', found '#'",
        ),
        (
            "width >= 640 and\n  height >= 480 and\n  (camera = 'front' or and)",
            3,
            24,
            "and",
            ("a condition",),
            "line 3, column 24: expected a condition after 'or', found 'and'",
        ),
        (
            'a = "two\nlines" and\n b = )',
            3,
            6,
            ")",
            ("a value",),
            "line 3, column 6: expected a value after '=', found ')'",
        ),
    ],
)
def test_syntax_errors_say_where_and_what(
    text: str,
    line: int,
    column: int,
    found: str | None,
    expected: tuple[str, ...],
    message: str,
) -> None:
    error = syntax_error(text)
    assert (error.line, error.column, error.found, error.expected) == (
        line,
        column,
        found,
        expected,
    )
    assert error.message == message
    assert str(error) == message


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        (r'a = "bad \q escape"', 1, 10, "unknown escape '\\q' in a string"),
        (r'a = "\u12"', 1, 6, "unknown escape '\\u' in a string"),
        ('a = "x"\n and b = "\\ud800"', 2, 10, "half a surrogate pair"),
        ("a = 1e999", 1, 5, "the number 1e999 is out of range"),
        ("a = 9223372036854775808", 1, 5, "out of range"),
        ("a = " + "9" * 5000, 1, 5, "out of range"),
        ("annotations.count(x = 1)", 1, 1, "annotations.count(...) must be compared with a number"),
        ("annotations.every()", 1, 1, "unknown quantifier 'every': use any, none or count"),
        ("annotations.any() > 1", 1, 1, "only count(...) is compared with a number, not any(...)"),
        ("annotations.count() >= 1.5", 1, 24, "a count is compared with a whole number"),
        ("a.b.any()", 1, 1, "expected relation.any(...)"),
        ("x = 1 and annotations()", 1, 11, "expected relation.any(...)"),
    ],
)
def test_semantic_syntax_errors_point_at_the_token(
    text: str, line: int, column: int, message: str
) -> None:
    error = syntax_error(text)
    assert (error.line, error.column) == (line, column)
    assert message in error.message
    assert error.message.startswith(f"line {line}, column {column}: ")


def test_expected_names_are_never_lark_terminals() -> None:
    for text in ["", "a", "a =", "a in (", "a = 1 and", "order by", "has", "x.any(", "a not"]:
        try:
            parse(text + " ~")
        except DQLSyntaxError as error:
            assert error.expected, text
            for name in error.expected:
                assert not re.search(r"[A-Z_]{3,}|\$END", name), (text, error.expected)


# ---------------------------------------------------------------------------------------------
# Hostile input and limits


@pytest.mark.parametrize(
    "value",
    [
        "'; drop table items; --",
        '"; drop table items; --',
        "1 OR 1=1",
        "x' or '1'='1",
        "\\",
        "日本語",
        "\U0001f600 and \u202e right-to-left",
        "nul\x00byte",
        "a" * 10_000,
    ],
)
def test_hostile_strings_are_plain_values(value: str) -> None:
    assert where(f"name = {json.dumps(value)}") == Compare(f("name"), "=", value)
    assert where(f"name in ({json.dumps(value, ensure_ascii=False)})") == In(f("name"), (value,))


@pytest.mark.parametrize(
    "text",
    [
        "name = ''; drop table items; --'",
        "name = 1; drop table items",
        "name = 'x' -- comment",
        "name = 'x' /* c */",
        "select * from items",
        "name = 'x\x00' and \x00",
        "name\x00 = 1",
        "name = 'x' or 1=1",
        "`unterminated = 1",
        "a = \ud800",
        "\ufeffa = 1",
        "a = 1 \u00a0and\u2003 b = 2 \u0000",
    ],
)
def test_hostile_text_is_a_clean_syntax_error(text: str) -> None:
    error = syntax_error(text)
    assert error.line >= 1 and error.column >= 1
    assert error.message.startswith(f"line {error.line}, column {error.column}: ")


def test_unicode_whitespace_separates_tokens() -> None:
    assert where("a = 1\u00a0and\u2003b = 2") == And(
        (Compare(f("a"), "=", 1), Compare(f("b"), "=", 2))
    )


def test_text_longer_than_the_limit_is_refused() -> None:
    with pytest.raises(DQLError, match="100,001 characters long; the limit is 100,000"):
        parse("a = 1" + " " * (MAX_LENGTH - 4))


def test_text_of_100_kb_parses() -> None:
    values = ", ".join(f'"v{i:05}"' for i in range(9_000))
    text = f"name in ({values})"
    text += " " * (MAX_LENGTH - len(text))
    assert len(text) == MAX_LENGTH
    parsed = where(text)
    assert isinstance(parsed, In) and len(parsed.values) == 9_000
    clauses = " and ".join(f"a{i} = {i}" for i in range(8_000))[:MAX_LENGTH]
    clauses = clauses[: clauses.rindex(" and ")]
    assert len(where(clauses).items) > 6_000  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "text",
    [
        "(" * 1000 + "a = 1" + ")" * 1000,
        "(" * 1000,
        "not " * 1000 + "a = 1",
        "not (" * 500 + "a = 1" + ")" * 500,
        "annotations.any(" * 1000 + ")" * 1000,
        "a = 1 and (" * 100 + "b = 1" + ")" * 100,
        "x in (" * 1000,
        ")" * 1000 + "(" * 1000,
        "(" * 70 + '"\\' * 40_000,  # a scan that could go quadratic on quotes
    ],
)
def test_deep_nesting_is_a_clean_error(text: str) -> None:
    error = syntax_error(text)
    assert "nests deeper than 64 levels" in error.message or "expected" in error.message


def test_nesting_up_to_the_limit_parses() -> None:
    a = Compare(f("a"), "=", 1)
    assert where("(" * MAX_DEPTH + "a = 1" + ")" * MAX_DEPTH) == a
    nots = where("not " * MAX_DEPTH + "a = 1")
    for _ in range(MAX_DEPTH):
        assert isinstance(nots, Not)
        nots = nots.item
    assert nots == a
    many = " and ".join(["x not in (1) and not (y = 2)"] * 200)  # wide, not deep
    assert len(where(many).items) == 400  # type: ignore[union-attr]
    with pytest.raises(DQLSyntaxError, match="deeper than 64"):
        parse("(" * (MAX_DEPTH + 1) + "a = 1" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(DQLSyntaxError, match="deeper than 64"):
        parse("not " * (MAX_DEPTH + 1) + "a = 1")


def test_only_text_is_parsed() -> None:
    with pytest.raises(DQLError, match="a DQL query is text, not bytes"):
        parse(b"a = 1")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Random ASTs printed to text parse back to the same AST

_KEYWORDS = {"and", "or", "not", "in", "like", "has", "order", "by", "asc", "desc"}
_KEYWORDS |= {"true", "false", "null"}

segments = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True),
    st.sampled_from(sorted(_KEYWORDS)),
    st.text(
        st.characters(blacklist_characters="`", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=6,
    ),
)
fields = st.lists(segments, min_size=1, max_size=4).map(lambda path: Field(tuple(path)))
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
relations = st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True)
operators = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])
leaves = st.one_of(
    st.builds(Compare, fields, operators, values),
    st.builds(In, fields, st.lists(values, max_size=3).map(tuple), st.booleans()),
    st.builds(Like, fields, texts),
    st.builds(Exists, fields),
    st.builds(Quantified, relations, st.sampled_from(["any", "none"])),
)


def _compound(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    many = st.lists(children, min_size=2, max_size=4)
    return st.one_of(
        many.map(all_of),  # type: ignore[arg-type]
        many.map(any_of),  # type: ignore[arg-type]
        st.builds(Not, children),
        st.builds(Quantified, relations, st.sampled_from(["any", "none"]), children),
        st.builds(Count, relations, st.none() | children, operators, st.integers(-5, 10**6)),
    )


expressions = st.recursive(leaves, _compound, max_leaves=10)
queries = st.builds(
    Query,
    st.none() | expressions,
    st.lists(st.builds(Order, fields, st.booleans()), max_size=3).map(tuple),
)


def _segment(name: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name.lower() not in _KEYWORDS:
        return name
    return f"`{name}`"


def _path(field: Field) -> str:
    return ".".join(_segment(name) for name in field.path)


def _value(value: object, single_quotes: bool) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    assert isinstance(value, str)
    if single_quotes:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return json.dumps(value)


def _text(expr: Expr, context: str, quotes: bool) -> str:
    """DQL text for ``expr``; ``context`` is the operator around it, for parentheses."""
    match expr:
        case Or(items):
            text = " or ".join(_text(item, "or", quotes) for item in items)
            return f"({text})" if context in ("and", "not") else text
        case And(items):
            text = " and ".join(_text(item, "and", quotes) for item in items)
            return f"({text})" if context == "not" else text
        case Not(item):
            return "not " + _text(item, "not", quotes)
        case Compare(field, op, value):
            return f"{_path(field)} {op} {_value(value, quotes)}"
        case In(field, items, negated):
            listed = ", ".join(_value(value, quotes) for value in items)
            return f"{_path(field)} {'not in' if negated else 'in'} ({listed})"
        case Like(field, pattern):
            return f"{_path(field)} like {_value(pattern, quotes)}"
        case Exists(field):
            return f"has {_path(field)}"
        case Quantified(relation, quantifier, inner):
            body = "" if inner is None else _text(inner, "or", quotes)
            return f"{_segment(relation)}.{quantifier}({body})"
        case Count(relation, inner, op, value):
            body = "" if inner is None else _text(inner, "or", quotes)
            return f"{_segment(relation)}.count({body}) {op} {value}"
    raise AssertionError(expr)


def _query_text(query: Query, quotes: bool) -> str:
    text = "" if query.where is None else _text(query.where, "or", quotes)
    if query.order:
        text += " order by " + ", ".join(
            _path(o.field) + (" desc" if o.descending else " asc") for o in query.order
        )
    return text


@settings(max_examples=300, deadline=None)
@given(queries, st.booleans())
def test_printed_queries_parse_back_to_the_same_ast(query: Query, single_quotes: bool) -> None:
    assert parse(_query_text(query, single_quotes)) == query


_FRAGMENTS = st.sampled_from(
    [
        "a", "b.c", "`x y`", "=", "!=", ">=", "<", "in", "not", "and", "or", "has", "like",
        "(", ")", ",", "1", "-2.5e3", "'s'", '"d"', "true", "null", "order", "by", "desc",
        "annotations.any", "annotations.count", ".", "`", "'", '"', "\\", "\x00", "é", "\n",
    ]
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(_FRAGMENTS, max_size=25), st.sampled_from([" ", ""]))
def test_any_text_is_a_query_or_a_dql_error(fragments: list[str], separator: str) -> None:
    try:
        result = parse(separator.join(fragments))
    except DQLError as error:
        assert error.message
    else:
        assert isinstance(result, Query)


# The fast path (dql.parser._Driver) against lark's own parser, on token soup that is now and
# then a query: the same AST, the same error, or lark's syntax error where the driver gives up.
_WORDS = ["a", "b.c", "x.any", "y.count", "1", "-2.5", '"s"', "'t'", "true", "null", "and", "or"]
_WORDS += ["not", "in", "like", "has", "order", "by", "desc", "(", ")", ",", "=", ">=", '"\\q"']


@given(st.lists(st.sampled_from(_WORDS), max_size=12), st.booleans())
@settings(max_examples=400)
def test_the_fast_path_parses_as_lark_does(words: list[str], lines: bool) -> None:
    from lark.exceptions import UnexpectedInput

    from dql.parser import _driver, _parser

    text = ("\n" if lines else " ").join(words)

    def outcome(parse_with: object) -> object:
        try:
            return parse_with(text)  # type: ignore[operator]
        except DQLError as error:
            return ("error", str(error))
        except UnexpectedInput:
            return "syntax error"

    fast, lark = outcome(_driver().parse), outcome(_parser().parse)
    assert fast == lark or (fast is None and lark == "syntax error"), text
