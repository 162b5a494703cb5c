"""Parser and evaluator for Pub/Sub subscription filters on message attributes.

Grammar (as documented for the real service)::

    expr      := unary (("AND" unary)+ | ("OR" unary)+)?   # AND and OR never mix unparenthesised
    unary     := ("NOT" | "-") unary | "(" expr ")" | predicate
    predicate := "attributes" ":" key
               | "attributes" "." key ("=" | "!=") string
               | "hasPrefix" "(" "attributes" "." key "," string ")"
    key       := identifier | string
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Predicate = Callable[[Mapping[str, str]], bool]

MAX_FILTER_BYTES = 256

_IDENT_START = re.compile(r"[A-Za-z0-9_]")
_IDENT = re.compile(r"[A-Za-z0-9_\-]+")
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
    "`": "`",
    "?": "?",
}


class FilterError(ValueError):
    """The filter is syntactically or semantically invalid."""


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "ident", "string", or the punctuation itself
    value: str
    pos: int


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= len(text):
            break
        esc = text[i + 1]
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
            i += 2
            continue
        hex_len = {"x": 2, "X": 2, "u": 4, "U": 8}.get(esc)
        if hex_len is not None:
            digits = text[i + 2 : i + 2 + hex_len]
            if len(digits) != hex_len or not re.fullmatch(r"[0-9A-Fa-f]+", digits):
                raise FilterError(f"invalid \\{esc} escape at position {i}")
            code = int(digits, 16)
            if code > 0x10FFFF:
                raise FilterError(f"invalid code point at position {i}")
            out.append(chr(code))
            i += 2 + hex_len
            continue
        octal = text[i + 1 : i + 4]
        if re.fullmatch(r"[0-3][0-7]{2}", octal):
            out.append(chr(int(octal, 8)))
            i += 4
            continue
        raise FilterError(f"invalid escape sequence at position {i}")
    raise FilterError(f"unterminated string literal at position {start}")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "\"'":
            value, end = _read_string(text, i)
            tokens.append(_Token("string", value, i))
            i = end
        elif text.startswith("!=", i):
            tokens.append(_Token("!=", "!=", i))
            i += 2
        elif ch in "().,:=-":
            # A "-" only reaches here at the start of a token, where it is negation; inside
            # identifiers such as `ce-type` it is consumed by the identifier pattern.
            tokens.append(_Token(ch, ch, i))
            i += 1
        elif _IDENT_START.match(ch):
            match = _IDENT.match(text, i)
            assert match is not None  # _IDENT_START guarantees at least one character
            tokens.append(_Token("ident", match.group(), i))
            i = match.end()
        else:
            raise FilterError(f"unexpected character {ch!r} at position {i}")
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._pos = 0

    def _peek(self) -> _Token | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _next(self, expected: str) -> _Token:
        tok = self._peek()
        if tok is None:
            raise FilterError(f"expected {expected} but the filter ended")
        self._pos += 1
        return tok

    def _expect(self, kind: str, value: str | None = None) -> _Token:
        tok = self._next(value or kind)
        if tok.kind != kind or (value is not None and tok.value != value):
            raise FilterError(f"expected {value or kind} at position {tok.pos}, got {tok.value!r}")
        return tok

    def _is_keyword(self, word: str) -> bool:
        tok = self._peek()
        return tok is not None and tok.kind == "ident" and tok.value == word

    def parse(self) -> Predicate:
        pred = self._expr()
        tok = self._peek()
        if tok is not None:
            raise FilterError(f"unexpected {tok.value!r} at position {tok.pos}")
        return pred

    def _expr(self) -> Predicate:
        first = self._unary()
        if not (self._is_keyword("AND") or self._is_keyword("OR")):
            return first
        op = self._next("operator").value
        operands = [first, self._unary()]
        while self._is_keyword("AND") or self._is_keyword("OR"):
            tok = self._next("operator")
            if tok.value != op:
                raise FilterError(
                    f"AND and OR must not be mixed without parentheses (position {tok.pos})"
                )
            operands.append(self._unary())
        if op == "AND":
            return lambda attrs: all(p(attrs) for p in operands)
        return lambda attrs: any(p(attrs) for p in operands)

    def _unary(self) -> Predicate:
        tok = self._peek()
        if tok is None:
            raise FilterError("expected an expression but the filter ended")
        if tok.kind == "-" or (tok.kind == "ident" and tok.value == "NOT"):
            self._pos += 1
            inner = self._unary()
            return lambda attrs: not inner(attrs)
        if tok.kind == "(":
            self._pos += 1
            inner = self._expr()
            self._expect(")")
            return inner
        return self._predicate()

    def _key(self) -> str:
        tok = self._next("attribute key")
        if tok.kind not in ("ident", "string"):
            raise FilterError(f"expected attribute key at position {tok.pos}, got {tok.value!r}")
        return tok.value

    def _predicate(self) -> Predicate:
        tok = self._expect("ident")
        if tok.value == "hasPrefix":
            self._expect("(")
            self._expect("ident", "attributes")
            self._expect(".")
            key = self._key()
            self._expect(",")
            prefix = self._expect("string").value
            self._expect(")")
            return lambda attrs: key in attrs and attrs[key].startswith(prefix)
        if tok.value != "attributes":
            raise FilterError(f"unknown identifier {tok.value!r} at position {tok.pos}")
        sep = self._next("'.' or ':'")
        if sep.kind == ":":
            key = self._key()
            return lambda attrs: key in attrs
        if sep.kind != ".":
            raise FilterError(f"expected '.' or ':' at position {sep.pos}")
        key = self._key()
        op = self._next("'=' or '!='")
        if op.kind not in ("=", "!="):
            raise FilterError(f"expected '=' or '!=' at position {op.pos}")
        value = self._expect("string").value
        if op.kind == "=":
            return lambda attrs: attrs.get(key) == value
        return lambda attrs: attrs.get(key) != value


def parse_filter(text: str) -> Predicate | None:
    """Compile a filter; None means "no filter" (every message matches)."""
    if len(text.encode()) > MAX_FILTER_BYTES:
        raise FilterError(f"filter is longer than {MAX_FILTER_BYTES} bytes")
    if not text.strip():
        return None
    return _Parser(_tokenize(text)).parse()
