"""The DQL text front end: ``parse(text) -> Query``.

The grammar (``grammar.lark``) is LALR and the transformer runs inside the parser, so a query is
lexed, parsed and turned into ``dql.ast`` nodes in one pass, without a parse tree. The lexer is our
own (:class:`_Lexer`): one regular expression compiled from the grammar's terminals, at a fraction
of the per-token cost of lark's lexers.

A query is first parsed by :class:`_Driver`, a loop over lark's own parse table and reduction
callbacks (the transformer) with the lexer inlined and light tokens: it does what lark's parser
does for a valid query at under half the cost (a 10-clause query in well under 0.1 ms). Text it
cannot parse goes to lark's parser, which finds the same error and says where and why.

The LALR parser keeps its own stack, so no input makes it recurse; the limits below keep the AST
handed to the compiler (which does recurse) small and shallow whatever a user types.

Also home of the AST helpers both front ends share (:func:`all_of`, :func:`any_of`,
:func:`number_fits`), so text and Dataloop JSON build the same canonical trees.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import Lexer
from lark.parsers.lalr_analysis import Shift

from dql.ast import (
    And,
    Compare,
    Count,
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
    Value,
)
from dql.errors import DQLError, DQLSyntaxError

if TYPE_CHECKING:
    from lark.common import LexerConf
    from lark.lexer import LexerState
    from lark.parsers.lalr_parser_state import ParserState

__all__ = ["MAX_DEPTH", "MAX_LENGTH", "all_of", "any_of", "number_fits", "parse"]

MAX_LENGTH = 100_000
"""Longest query text accepted, in characters."""

MAX_DEPTH = 64
"""Deepest nesting accepted: parentheses of any kind, ``not`` and quantifiers each add a level."""

_GRAMMAR = Path(__file__).with_name("grammar.lark")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def all_of(items: Iterable[Expr]) -> Expr | None:
    """The conjunction of ``items`` in canonical form: nested And flattened, no 0- or 1-item And."""
    return _junction(And, items)


def any_of(items: Iterable[Expr]) -> Expr | None:
    """The disjunction of ``items`` in canonical form (see :func:`all_of`)."""
    return _junction(Or, items)


def _junction(kind: type[And] | type[Or], items: Iterable[Expr]) -> Expr | None:
    flat: list[Expr] = []
    for item in items:
        if isinstance(item, kind):
            flat.extend(item.items)
        else:
            flat.append(item)
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else kind(tuple(flat))


def number_fits(value: int | float) -> bool:
    """Whether a number can be stored and compared by both databases: a 64-bit integer or a
    finite float (SQLite and PostgreSQL agree on nothing beyond that)."""
    if isinstance(value, int):
        return _INT64_MIN <= value <= _INT64_MAX
    return math.isfinite(value)


def parse(text: str) -> Query:
    """Parse DQL text into a :class:`Query`; raise :class:`DQLSyntaxError` saying where and why."""
    if not isinstance(text, str):
        raise DQLError(f"a DQL query is text, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise DQLError(f"the query is {len(text):,} characters long; the limit is {MAX_LENGTH:,}")
    if not text.isascii():
        _check_encodable(text)
    if text.count("(") + text.lower().count("not") > MAX_DEPTH:
        _check_depth(text)
    query = _driver().parse(text)
    if query is not None:
        return query
    try:
        return _parser().parse(text)  # (which raises the syntax error the driver stopped at)
    except UnexpectedInput as error:
        raise _syntax_error(text, error) from None


# ---------------------------------------------------------------------------------------------
# The lexer


class _Lexer(Lexer):
    """Lark's lexer interface over one compiled regular expression (see the module docstring).

    Keywords are the grammar's alphabetic string terminals. A word is matched as a ``PATH`` and
    retyped as the keyword it spells (in any case); a dotted path never is a keyword.
    """

    __future_interface__ = 2  # lex(lexer_state, parser_state)

    def __init__(self, conf: LexerConf) -> None:
        self.keywords = {
            t.pattern.value: t.name
            for t in conf.terminals
            if t.pattern.type == "str" and t.pattern.value.isalpha()
        }
        ignore = "|".join(t.pattern.to_regexp() for t in conf.terminals if t.name in conf.ignore)
        tokens = [
            t
            for t in conf.terminals
            if t.name not in conf.ignore and t.name not in self.keywords.values()
        ]
        # the order lark's own lexers use: higher priority, then longer patterns first
        tokens.sort(key=lambda t: (-t.priority, -t.pattern.max_width, -len(t.pattern.value)))
        alternatives = "|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in tokens)
        self.scan = re.compile(f"(?:{ignore})?(?:{alternatives})").match
        self.skip = re.compile(f"(?:{ignore})?").match

    def lex(self, lexer_state: LexerState, parser_state: ParserState[Any]) -> Iterator[Token]:
        # lexer_state.last_token is kept one behind: the token before the one the parser is
        # looking at, which is what a syntax error message wants to quote
        text = lexer_state.text.text
        scan, keywords = self.scan, self.keywords
        pos = counted = line_start = 0  # newlines are counted up to `counted`
        line = 1
        multiline = "\n" in text
        previous = None
        while match := scan(text, pos):
            kind = match.lastgroup
            start = match.start(kind)
            value = match.group(kind)
            if kind == "PATH" and (keyword := keywords.get(value.lower())):
                kind = keyword
            if multiline:
                newlines = text.count("\n", counted, start)
                if newlines:
                    line += newlines
                    line_start = text.rfind("\n", counted, start) + 1
                counted = start
            pos = match.end()
            lexer_state.last_token = previous
            previous = Token(kind, value, start, line, start - line_start + 1)
            yield previous
        lexer_state.last_token = previous
        pos = self.skip(text, pos).end()
        if pos < len(text):
            line, column = _position(text, pos)
            raise UnexpectedCharacters(text, pos, line, column, state=parser_state)


# ---------------------------------------------------------------------------------------------
# The fast path


class _Token(NamedTuple):
    """What the transformer reads of a token (lark's tokens carry more, at a higher price)."""

    type: str
    value: str
    line: int
    column: int


_Lexeme: TypeAlias = Token | _Token

# per parser state, per terminal or rule name: a shift to a state, or a reduction by a rule
# (how many values it takes, the rule's name, its callback)
_Action: TypeAlias = tuple[bool, Any]


class _Driver:
    """Lark's LALR loop (``lark.parsers.lalr_parser_state.ParserState.feed_token``) over lark's
    table and callbacks, with :class:`_Lexer`'s scan inlined; None where lark raises."""

    def __init__(self, lark: Lark) -> None:
        parser = lark.parser.parser.parser
        table, callbacks = parser.parse_table, parser.callbacks
        assert not any(isinstance(name, str) for name in callbacks)  # no terminal callbacks
        self.states: dict[int, dict[str, _Action]] = {
            state: {
                name: (True, arg)
                if action is Shift
                else (False, (len(arg.expansion), arg.origin.name, callbacks[arg]))
                for name, (action, arg) in actions.items()
            }
            for state, actions in table.states.items()
        }
        self.start, self.end = table.start_states["start"], table.end_states["start"]
        lexer = _Lexer(lark.lexer_conf)
        self.scan, self.skip, self.keywords = lexer.scan, lexer.skip, lexer.keywords

    def parse(self, text: str) -> Query | None:
        states, scan, keywords = self.states, self.scan, self.keywords
        stack, values = [self.start], []
        append, push = stack.append, values.append
        pos = counted = line_start = 0  # newlines are counted up to `counted`
        line = 1
        multiline = "\n" in text
        while True:
            match = scan(text, pos)
            if match is None:
                if self.skip(text, pos).end() < len(text):
                    return None  # a character no token starts with
                kind, token = "$END", None
            else:
                kind = match.lastgroup  # type: ignore[assignment]
                start = match.start(kind)
                value = match.group(kind)
                if kind == "PATH" and (keyword := keywords.get(value.lower())):
                    kind = keyword
                if multiline:
                    newlines = text.count("\n", counted, start)
                    if newlines:
                        line += newlines
                        line_start = text.rfind("\n", counted, start) + 1
                    counted = start
                pos = match.end()
                token = _Token(kind, value, line, start - line_start + 1)
            while True:
                found = states[stack[-1]].get(kind)
                if found is None:
                    return None  # a syntax error
                shift, arg = found
                if shift:
                    append(arg)
                    push(token)
                    break
                size, rule, callback = arg
                if size:
                    children = values[-size:]
                    del stack[-size:]
                    del values[-size:]
                else:
                    children = []
                push(callback(children))
                append(states[stack[-1]][rule][1])
                if token is None and stack[-1] == self.end:
                    return values[-1]  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# The transformer: grammar rule aliases -> AST nodes


def _error_at(token: _Lexeme, message: str, offset: int = 0) -> DQLSyntaxError:
    """A syntax error ``offset`` characters into ``token`` (which may span lines)."""
    before = token.value[:offset]
    newlines = before.count("\n")
    line = token.line + newlines
    column = offset - before.rfind("\n") if newlines else token.column + offset
    return DQLSyntaxError(
        f"line {line}, column {column}: {message}",
        line=line,
        column=column,
        found=token.value,
    )


_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {
    '"': '"',
    "'": "'",
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_SURROGATE = re.compile("[\ud800-\udfff]")


def _string(token: _Lexeme) -> str:
    """The value of a quoted string token, escapes decoded: JSON's, plus ``\\'``."""
    body = token.value[1:-1]
    if "\\" not in body:
        return body

    def decode(match: re.Match[str]) -> str:
        escape = match.group(1)
        if escape[0] == "u" and len(escape) == 5:
            return chr(int(escape[1:], 16))
        try:
            return _SIMPLE_ESCAPES[escape]
        except KeyError:
            raise _error_at(
                token,
                f"unknown escape '\\{escape}' in a string "
                "(use JSON's escapes, or \\' in single quotes)",
                1 + match.start(),
            ) from None

    value = _ESCAPE.sub(decode, body)
    if _SURROGATE.search(value):
        # \uD83D\uDE00 is one character written as a UTF-16 pair, as in JSON; a lone half is not text
        try:
            value = value.encode("utf-16", "surrogatepass").decode("utf-16")
        except UnicodeDecodeError:
            raise _error_at(token, "a \\u escape in this string is half a surrogate pair") from None
    return value


def _number(token: _Lexeme) -> int | float:
    text = token.value
    number: int | float
    if "." in text or "e" in text or "E" in text:
        number = float(text)
    elif len(text) > 20:  # int() of thousands of digits is slow, and refused past 4300
        number = _INT64_MAX + 1
    else:
        number = int(text)
    if not number_fits(number):
        raise _error_at(token, f"the number {text[:30]} is out of range")
    return number


_LITERALS: dict[str, Value] = {"TRUE": True, "FALSE": False, "NULL": None}


def _value(token: _Lexeme) -> Value:
    kind = token.type
    if kind == "STRING":
        return _string(token)
    if kind == "NUMBER":
        return _number(token)
    return _LITERALS[kind]


_SEGMENT = re.compile(r"`([^`]+)`|([^.`]+)")


def _field(token: _Lexeme) -> Field:
    path = token.value
    if "`" not in path:
        return Field(tuple(path.split(".")))
    return Field(tuple(quoted or plain for quoted, plain in _SEGMENT.findall(path)))


class _ToAst(Transformer[_Lexeme, Query]):
    """Called by the LALR parser on each reduction with the children of the rule, so it must stay
    stateless (one instance serves every thread)."""

    def query(self, children: list[Any]) -> Query:
        where, order = children
        return Query(where, order or ())

    def or_expr(self, items: list[Expr]) -> Expr | None:
        return any_of(items)

    def and_expr(self, items: list[Expr]) -> Expr | None:
        return all_of(items)

    def not_(self, children: list[Expr]) -> Not:
        return Not(children[0])

    def compare(self, children: list[_Lexeme]) -> Compare:
        path, op, value = children
        return Compare(_field(path), op.value, _value(value))

    def in_(self, children: list[Any]) -> In:
        path, values = children
        return In(_field(path), values)

    def not_in(self, children: list[Any]) -> In:
        path, values = children
        return In(_field(path), values, negated=True)

    def values(self, tokens: list[_Lexeme | None]) -> tuple[Value, ...]:
        return tuple(_value(token) for token in tokens if token is not None)

    def like(self, children: list[_Lexeme]) -> Like:
        path, pattern = children
        return Like(_field(path), _string(pattern))

    def has(self, children: list[_Lexeme]) -> Exists:
        return Exists(_field(children[0]))

    def quantified(self, children: list[Any]) -> Quantified:
        path, where = children
        relation, method = _call(path)
        if method == "count":
            raise _error_at(path, f"{relation}.count(...) must be compared with a number")
        if method not in ("any", "none"):
            raise _error_at(path, f"unknown quantifier '{method}': use any, none or count")
        return Quantified(relation, method, where)

    def count(self, children: list[Any]) -> Count:
        path, where, op, number = children
        relation, method = _call(path)
        if method != "count":
            raise _error_at(path, f"only count(...) is compared with a number, not {method}(...)")
        value = _number(number)
        if not isinstance(value, int):
            raise _error_at(number, "a count is compared with a whole number")
        return Count(relation, where, op.value, value)

    def order(self, items: list[Order]) -> tuple[Order, ...]:
        return tuple(items)

    def order_item(self, children: list[Any]) -> Order:
        path, direction = children
        return Order(_field(path), direction is not None and direction.type == "DESC")


def _call(path: _Lexeme) -> tuple[str, str]:
    """``relation.method`` of a quantifier, the method in lower case."""
    segments = _field(path).path
    if len(segments) != 2:
        raise _error_at(
            path,
            "expected relation.any(...), relation.none(...) or relation.count(...), "
            f"found {path.value}(...)",
        )
    return segments[0], segments[1].lower()


@cache
def _parser() -> Lark:
    """The parser, built once per process on first use (a tenth of a second, so not at import)."""
    return Lark.open(str(_GRAMMAR), parser="lalr", lexer=_Lexer, strict=True, transformer=_ToAst())


@cache
def _driver() -> _Driver:
    return _Driver(_parser())


# ---------------------------------------------------------------------------------------------
# Limits


def _position(text: str, pos: int) -> tuple[int, int]:
    """1-based line and column of character offset ``pos``."""
    line = text.count("\n", 0, pos) + 1
    return line, pos - text.rfind("\n", 0, pos)


def _check_encodable(text: str) -> None:
    """Refuse lone surrogates (possible in Python strings, e.g. from JSON ``"\\ud800"``): neither
    database can store or compare them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        line, column = _position(text, error.start)
        raise DQLSyntaxError(
            f"line {line}, column {column}: the text contains half a UTF-16 surrogate pair "
            f"({text[error.start]!r}), which is not a character",
            line=line,
            column=column,
            found=text[error.start],
        ) from None


# Strings and quoted names are skipped whole, so what they contain never counts; one left open
# runs to the end of the text (a syntax error anyway), which keeps the scan linear whatever the
# quotes. Any other word or symbol ends a run of `not`.
_NESTING_TOKEN = re.compile(
    r""""(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|`[^`]*`?|[()]|[A-Za-z0-9_]+|[^\s"'`()A-Za-z0-9_]+""",
    re.DOTALL,
)


def _check_depth(text: str) -> None:
    """Refuse text nesting deeper than MAX_DEPTH, before parsing it.

    Only called when the text has more than MAX_DEPTH '(' and 'not' together, so ordinary queries
    skip it. A run of ``not`` nests once per word; a '(' opens a level inside them.
    """
    outer: list[int] = []
    base = 0  # levels opened by the enclosing parentheses and the `not`s before them
    nots = 0  # consecutive `not`s just read
    for match in _NESTING_TOKEN.finditer(text):
        token = match.group()
        if token == "(":
            outer.append(base)
            base, nots = base + nots + 1, 0
        elif token == ")":
            base, nots = (outer.pop() if outer else 0), 0
        elif token.lower() == "not":
            nots += 1
        else:
            nots = 0
        if base + nots > MAX_DEPTH:
            line, column = _position(text, match.start())
            raise DQLSyntaxError(
                f"line {line}, column {column}: the query nests deeper than {MAX_DEPTH} levels "
                "(parentheses, not, quantifiers)",
                line=line,
                column=column,
                found=token,
            )


# ---------------------------------------------------------------------------------------------
# Syntax errors in words people use

_NAMES = {
    "PATH": "a field",
    "STRING": "a string",
    "NUMBER": "a number",
    "TRUE": "true",
    "FALSE": "false",
    "NULL": "null",
    "COMP_OP": "a comparison",
    "_IN": "in",
    "_NOT": "not",
    "_LIKE": "like",
    "_HAS": "has",
    "_AND": "and/or",
    "_OR": "and/or",
    "_ORDER": "order by",
    "_BY": "by",
    "ASC": "asc/desc",
    "DESC": "asc/desc",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "$END": "end of input",
}
# (needs all of, replaces these, with): several terminals that mean one thing to a person
_GROUPS = (
    (
        {"a string", "a number", "null"},
        {"a string", "a number", "true", "false", "null"},
        "a value",
    ),
    ({"a field", "has"}, {"a field", "has", "not", "'('"}, "a condition"),
    (
        {"a comparison", "in", "like"},
        {"a comparison", "in", "like", "not", "'('"},
        "an operator",
    ),
)
_RANKING = {
    name: rank
    for rank, name in enumerate(
        (
            "a condition",
            "a field",
            "an operator",
            "a comparison",
            "a value",
            "a string",
            "a number",
            "true",
            "false",
            "null",
            "in",
            "not",
            "like",
            "has",
            "'('",
            "','",
            "and/or",
            "')'",
            "asc/desc",
            "order by",
            "by",
            "end of input",
        )
    )
}
_UNTERMINATED = {
    '"': "an unterminated string",
    "'": "an unterminated string",
    "`": "an unterminated `quoted` field",
}


def _friendly(terminals: Iterable[str]) -> tuple[str, ...]:
    names = {_NAMES.get(terminal, terminal) for terminal in terminals}
    for needs, replaces, name in _GROUPS:
        if needs <= names:
            names = (names - replaces) | {name}
    return tuple(sorted(names, key=lambda name: (_RANKING.get(name, len(_RANKING)), name)))


def _show(text: str) -> str:
    shown = text if len(text) <= 40 else text[:37] + "..."
    return f"'{shown}'" if shown.isprintable() else repr(shown)


def _or_list(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _syntax_error(text: str, error: UnexpectedInput) -> DQLSyntaxError:
    found: str | None
    if isinstance(error, UnexpectedToken) and error.token.type != "$END":
        pos = error.token.start_pos
        found = error.token.value
        what = _show(found)
    elif isinstance(error, UnexpectedCharacters):
        pos = error.pos_in_stream
        found = text[pos]
        what = _UNTERMINATED.get(found) or _show(found)
    else:  # the text ended too soon
        pos, found, what = len(text.rstrip()), None, "end of input"
    # LALR merges states, so the terminals lark lists can be too many; asking the parser which
    # ones it would really take from here is exact
    parser = getattr(error, "interactive_parser", None)
    expected = _friendly(parser.accepts() if parser else getattr(error, "expected", ()))
    previous = parser.lexer_thread.state.last_token if parser else None
    line, column = _position(text, pos)
    message = f"line {line}, column {column}: "
    message += f"expected {_or_list(expected)}" if expected else "unexpected input"
    if previous is not None:
        message += f" after {_show(previous.value)}"
    message += f", found {what}"
    return DQLSyntaxError(message, line=line, column=column, found=found, expected=expected)
