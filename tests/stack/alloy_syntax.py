"""Just enough of Alloy's configuration syntax to check how components connect.

An Alloy file is a list of blocks (`name "label" { ... }`) holding attributes
(`key = expression`) and nested blocks. Components pass data by referring to each
other's exports: `forward_to = [loki.write.loki.receiver]`. A reference to a
component that doesn't exist stops Alloy at start-up; Alloy doesn't run here, so this
reads the blocks and the dotted names in the expressions, nothing more (no expression
evaluation, no type checking). `relabel_rules` and `relabel` add what a relabel rule
writes, which is what the log queries rely on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

_TOKEN = re.compile(
    r"""
    (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<newline>\n)
  | (?P<space>[ \t\r]+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<punct>==|!=|<=|>=|&&|\|\||[{}\[\]()=,:+\-*/%<>!.])
    """,
    re.VERBOSE | re.DOTALL,
)


class AlloySyntaxError(ValueError):
    """The text is not the Alloy syntax this reader understands."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    line: int

    @property
    def value(self) -> str:
        """A string literal's value; the text of any other token."""
        if self.kind == "string":
            return str(json.loads(self.text))
        if self.kind == "raw":
            return self.text[1:-1]
        return self.text


@dataclass
class Block:
    """`name "label" { ... }`: a component (top level, labelled) or a nested block."""

    name: str
    label: str | None
    line: int
    attributes: dict[str, list[Token]] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    def attribute(self, key: str) -> str:
        """The value of an attribute holding one literal, e.g. `host = "unix:///..."`."""
        tokens = self.attributes[key]
        if len(tokens) != 1:
            raise AlloySyntaxError(f"line {self.line}: {key} is not a single literal")
        return tokens[0].value

    def optional(self, key: str, default: str) -> str:
        """`attribute(key)`, or `default` when the block leaves the attribute out."""
        return self.attribute(key) if key in self.attributes else default

    def strings(self, key: str) -> list[str]:
        """The string literals of an attribute, e.g. `["a", "b"]` as ["a", "b"]."""
        return [token.value for token in self.attributes.get(key, []) if token.kind == "string"]

    def nested(self, name: str) -> list[Block]:
        return [block for block in self.blocks if block.name == name]

    def references(self) -> list[Token]:
        """Dotted names in this block's expressions and its nested blocks'."""
        found = [
            token
            for tokens in self.attributes.values()
            for token in tokens
            if token.kind == "name" and "." in token.text
        ]
        for block in self.blocks:
            found += block.references()
        return found


def tokenize(text: str) -> list[Token]:
    tokens = []
    line = 1
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise AlloySyntaxError(f"line {line}: unexpected {text[position]!r}")
        kind = match.lastgroup or ""
        if kind not in {"comment", "space"}:
            tokens.append(Token(kind, match.group(), line))
        line += match.group().count("\n")
        position = match.end()
    return tokens


def parse(text: str) -> list[Block]:
    """The top-level blocks of an Alloy file."""
    tokens = tokenize(text)
    blocks, _ = _parse_body(tokens, 0, closing=False)
    return blocks


def _skip_newlines(tokens: list[Token], position: int) -> int:
    while position < len(tokens) and tokens[position].kind == "newline":
        position += 1
    return position


def _parse_body(
    tokens: list[Token], position: int, closing: bool, into: Block | None = None
) -> tuple[list[Block], int]:
    blocks: list[Block] = []
    while True:
        position = _skip_newlines(tokens, position)
        if position >= len(tokens):
            if closing:
                raise AlloySyntaxError("missing }")
            return blocks, position
        token = tokens[position]
        if token.text == "}":
            if not closing:
                raise AlloySyntaxError(f"line {token.line}: unexpected }}")
            return blocks, position + 1
        if token.kind != "name":
            raise AlloySyntaxError(f"line {token.line}: expected a name, got {token.text!r}")
        following = tokens[position + 1] if position + 1 < len(tokens) else None
        if following is not None and following.text == "=":
            if into is None:
                raise AlloySyntaxError(f"line {token.line}: attribute outside a block")
            expression, position = _parse_expression(tokens, position + 2)
            into.attributes[token.text] = expression
            continue
        label = None
        position += 1
        if position < len(tokens) and tokens[position].kind == "string":
            label = tokens[position].value
            position += 1
        if position >= len(tokens) or tokens[position].text != "{":
            raise AlloySyntaxError(f"line {token.line}: expected {{ after {token.text}")
        block = Block(token.text, label, token.line)
        block.blocks, position = _parse_body(tokens, position + 1, closing=True, into=block)
        blocks.append(block)


def _parse_expression(tokens: list[Token], position: int) -> tuple[list[Token], int]:
    """Tokens up to the end of the line, or of the brackets opened on it."""
    expression: list[Token] = []
    depth = 0
    while position < len(tokens):
        token = tokens[position]
        if depth == 0 and (token.kind == "newline" or token.text == "}"):
            break
        if token.kind == "punct" and token.text in {"(", "[", "{"}:
            depth += 1
        elif token.kind == "punct" and token.text in {")", "]", "}"}:
            depth -= 1
        if token.kind != "newline":
            expression.append(token)
        position += 1
    if not expression:
        raise AlloySyntaxError(f"line {tokens[position - 1].line}: attribute without a value")
    return expression, position


def relabel_rules(text: str) -> list[Block]:
    """The `rule` blocks of every `discovery.relabel` component of an Alloy file."""
    return [
        rule
        for component in parse(text)
        if component.name == "discovery.relabel"
        for rule in component.nested("rule")
    ]


def relabel(rule: Block, labels: dict[str, str]) -> str | None:
    """What a `replace` rule writes, or None when its regex does not match.

    As Prometheus relabelling does it: the source labels' values joined by ";",
    matched against the regex anchored at both ends (default "(.*)"), and `$1` or
    `${1}` in the replacement (default "$1") replaced by the groups.
    """
    value = ";".join(labels.get(name, "") for name in rule.strings("source_labels"))
    match = re.fullmatch(rule.optional("regex", "(.*)"), value)
    if match is None:
        return None
    template = re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", rule.optional("replacement", "$1"))
    return match.expand(template)
