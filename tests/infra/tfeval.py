"""A small Terraform evaluator, so the infra tests can read `infra/` the way `terraform plan` does.

python-hcl2 parses each `.tf` file; this module evaluates the expressions of that parse tree:
variables (defaults, a `.tfvars` file, overrides), locals, `for_each`/`count` expansion of
resources and data sources, `dynamic` blocks, for-expressions, templates, conditionals and the
functions the infra code uses (`yamldecode(file(...))` among them), and ephemeral resources
(whose values Terraform lets reach only write-only arguments). What only exists after
apply (an `id`, a function's URL, a service account's email) evaluates to an `Unknown` that
remembers where it comes from, e.g. `${google_service_account.pusher.email}`, so tests can
check which resource a setting points at.

It is not Terraform: there is no provider schema and no type system. It is strict where
Terraform is (an undefined name, a missing map key, a duplicate key in a for-expression, a
`for_each` known only after apply all raise `EvalError`), so evaluating every resource doubles
as a check that the configuration hangs together. An expression it does not support raises
too, naming it, rather than evaluating to something wrong.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import yaml
from lark import Token, Tree

Node = Tree[Token]

__all__ = ["EvalError", "Instance", "Module", "Unknown", "is_known", "parse_file"]


class EvalError(Exception):
    """The configuration cannot be evaluated: the message says where and why."""


@dataclass(frozen=True)
class Unknown:
    """A value known only after apply. `text` shows it: `${address.attribute}` for a reference,
    or the expression around such references (`serviceAccount:${...email}`)."""

    text: str
    ref: str | None = None

    @classmethod
    def of_ref(cls, ref: str) -> Unknown:
        return cls("${" + ref + "}", ref)

    def __str__(self) -> str:
        return self.text


def is_known(value: Any) -> bool:
    """True when nothing in `value` (however deeply nested) is Unknown."""
    if isinstance(value, Unknown):
        return False
    if isinstance(value, dict):
        return all(is_known(v) for v in value.values())
    if isinstance(value, list):
        return all(is_known(v) for v in value)
    return True


def render(value: Any) -> str:
    """A value as HCL-ish text, for messages and for Unknowns built from other values."""
    if isinstance(value, Unknown):
        return value.text
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Instance):
        return value.address
    return str(value)


# --------------------------------------------------------------------------------------------
# Parsing


def parse_file(path: Path) -> Node:
    try:
        return hcl2.parses_to_tree(path.read_text(encoding="utf-8"))
    except Exception as e:  # lark raises many kinds; all mean "does not parse"
        raise EvalError(f"{path}: does not parse as HCL: {e}") from e


def _children(node: Node) -> list[Node | Token]:
    """Children without newlines/comments."""
    return [
        c for c in node.children if not (isinstance(c, Tree) and c.data == "new_line_or_comment")
    ]


def _subtrees(node: Node) -> list[Node]:
    return [c for c in _children(node) if isinstance(c, Tree)]


def _name(node: Node | Token) -> str:
    """The text of an identifier, keyword or literal used as a name (attribute, block type)."""
    if isinstance(node, Token):
        return str(node)
    if node.data in ("identifier", "keyword", "literal_value"):
        return str(node.children[0])
    if node.data == "string":
        return _plain_string(node)
    raise EvalError(f"expected a name, got {node.data}")


def _plain_string(node: Node) -> str:
    """A block label: a quoted string without interpolation."""
    parts = []
    for part in _subtrees(node):
        (tok,) = part.children
        if not isinstance(tok, Token):
            raise EvalError("block labels cannot contain interpolation")
        parts.append(_unescape(str(tok)))
    return "".join(parts)


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "u":
            out.append(chr(int(text[i + 2 : i + 6], 16)))
            i += 6
        elif nxt == "U":
            out.append(chr(int(text[i + 2 : i + 10], 16)))
            i += 10
        else:
            raise EvalError(f"unknown escape \\{nxt} in string")
    return "".join(out)


@dataclass(frozen=True)
class Block:
    """A top-level or nested block: `type "label" "label" { body }`."""

    type: str
    labels: tuple[str, ...]
    body: Node
    file: Path

    @classmethod
    def of(cls, node: Node, file: Path) -> Block:
        parts = _children(node)
        head = [p for p in parts if isinstance(p, Tree) and p.data != "body"]
        body = next(p for p in parts if isinstance(p, Tree) and p.data == "body")
        return cls(_name(head[0]), tuple(_name(h) for h in head[1:]), body, file)

    def attributes(self) -> dict[str, Node]:
        return body_attributes(self.body)

    def blocks(self) -> list[Block]:
        return [Block.of(b, self.file) for b in _subtrees(self.body) if b.data == "block"]


def body_attributes(body: Node) -> dict[str, Node]:
    out: dict[str, Node] = {}
    for node in _subtrees(body):
        if node.data == "attribute":
            parts = _subtrees(node)
            out[_name(parts[0])] = parts[-1]
    return out


def top_blocks(tree: Node, file: Path) -> list[Block]:
    (body,) = _subtrees(tree)
    return [Block.of(b, file) for b in _subtrees(body) if b.data == "block"]


# --------------------------------------------------------------------------------------------
# Resources


@dataclass
class Instance:
    """One instance of a resource or data source (one `for_each` key, one `count` index)."""

    module: Module
    block: Block
    mode: str  # "resource", "data" or "ephemeral"
    key: str | int | None
    each_value: Any = None
    _config: dict[str, Any] | None = field(default=None, repr=False)
    _evaluating: bool = field(default=False, repr=False)

    @property
    def type(self) -> str:
        return self.block.labels[0]

    @property
    def name(self) -> str:
        return self.block.labels[1]

    @property
    def address(self) -> str:
        base = f"{self.type}.{self.name}"
        if self.mode in ("data", "ephemeral"):
            base = f"{self.mode}.{base}"
        if self.key is None:
            return base
        return f"{base}[{json.dumps(self.key)}]"

    @property
    def config(self) -> dict[str, Any]:
        """The instance's arguments and nested blocks (lists of dicts), as planned."""
        if self._config is None:
            if self._evaluating:
                raise EvalError(f"{self.address} refers to itself")
            self._evaluating = True
            try:
                scope: dict[str, Any] = {}
                if isinstance(self.key, int):
                    scope["count"] = {"index": self.key}
                elif self.key is not None:
                    scope["each"] = {"key": self.key, "value": self.each_value}
                config = self.module.eval_body(self.block.body, scope, self.address)
                if self.mode != "ephemeral":
                    _check_no_ephemeral(config, self.address)
                self._config = config
            finally:
                self._evaluating = False
        return self._config

    def get(self, *path: str | int) -> Any:
        """A nested value of the config (`get("service_config", 0, "ingress_settings")`),
        None when absent."""
        value: Any = self.config
        for step in path:
            if isinstance(value, dict) and isinstance(step, str):
                value = value.get(step)
            elif isinstance(value, list) and isinstance(step, int) and step < len(value):
                value = value[step]
            else:
                return None
        return value

    def attr(self, name: str) -> Any:
        """The attribute as another resource referring to it would see it."""
        if name in self.config:
            return self.config[name]
        return Unknown.of_ref(f"{self.address}.{name}")


@dataclass
class ResourceGroup:
    """`type.name` in an expression: one instance, or a map/list of them."""

    instances: dict[str | int | None, Instance]
    expanded: str  # "single", "for_each" or "count"
    address: str

    def value(self) -> Any:
        if self.expanded == "single":
            return self.instances[None]
        if self.expanded == "count":
            return [
                self.instances[i] for i in sorted(k for k in self.instances if isinstance(k, int))
            ]
        return {k: v for k, v in sorted(self.instances.items(), key=lambda kv: str(kv[0]))}


META_ARGUMENTS = {"count", "for_each", "depends_on", "provider", "providers"}
META_BLOCKS = {"lifecycle", "provisioner", "connection", "precondition", "postcondition"}


# --------------------------------------------------------------------------------------------
# The module


class Module:
    """A directory of `.tf` files with values for its variables."""

    def __init__(
        self,
        directory: Path,
        variables: Mapping[str, Any] | None = None,
        tfvars: Path | None = None,
    ) -> None:
        self.directory = directory
        self.blocks: list[Block] = []
        for path in sorted(directory.glob("*.tf")):
            self.blocks.extend(top_blocks(parse_file(path), path))
        self.variable_blocks = {b.labels[0]: b for b in self.blocks if b.type == "variable"}
        self.local_exprs: dict[str, Node] = {}
        for b in self.blocks:
            if b.type == "locals":
                for name, expr in b.attributes().items():
                    if name in self.local_exprs:
                        raise EvalError(f"local.{name} is defined twice")
                    self.local_exprs[name] = expr
        self.resource_blocks: dict[tuple[str, str, str], Block] = {}
        for b in self.blocks:
            if b.type in ("resource", "data", "ephemeral"):
                key = (b.type, b.labels[0], b.labels[1])
                if key in self.resource_blocks:
                    raise EvalError(f"{b.type} {b.labels[0]}.{b.labels[1]} is defined twice")
                self.resource_blocks[key] = b
        self.output_blocks = {b.labels[0]: b for b in self.blocks if b.type == "output"}

        given: dict[str, Any] = {}
        if tfvars is not None:
            given.update(self.read_tfvars(tfvars))
        given.update(variables or {})
        if unknown := sorted(set(given) - set(self.variable_blocks)):
            raise EvalError(f"values given for undeclared variables: {unknown}")
        self.given = given

        self._locals: dict[str, Any] = {}
        self._locals_evaluating: set[str] = set()
        self._vars: dict[str, Any] = {}
        self._groups: dict[tuple[str, str, str], ResourceGroup] = {}
        self.functions = _functions(self)

    def read_tfvars(self, path: Path) -> dict[str, Any]:
        (body,) = _subtrees(parse_file(path))
        return {name: self.eval(expr, {}) for name, expr in body_attributes(body).items()}

    # ---- names

    def var(self, name: str) -> Any:
        if name not in self._vars:
            block = self.variable_blocks.get(name)
            if block is None:
                raise EvalError(f"var.{name} is not declared")
            if name in self.given:
                self._vars[name] = self.given[name]
            elif "default" in block.attributes():
                self._vars[name] = self.eval(block.attributes()["default"], {})
            else:
                raise EvalError(f"var.{name} has no default and no value was given")
        return self._vars[name]

    def local(self, name: str) -> Any:
        if name not in self._locals:
            if name not in self.local_exprs:
                raise EvalError(f"local.{name} is not defined")
            if name in self._locals_evaluating:
                raise EvalError(f"local.{name} depends on itself")
            self._locals_evaluating.add(name)
            try:
                self._locals[name] = self.eval(self.local_exprs[name], {}, f"local.{name}")
            finally:
                self._locals_evaluating.discard(name)
        return self._locals[name]

    def group(self, mode: str, type_: str, name: str) -> ResourceGroup:
        key = (mode, type_, name)
        if key not in self._groups:
            block = self.resource_blocks.get(key)
            prefix = "" if mode == "resource" else f"{mode}."
            address = f"{prefix}{type_}.{name}"
            if block is None:
                raise EvalError(f"{address} is not declared")
            attrs = block.attributes()
            instances: dict[str | int | None, Instance] = {}
            if "for_each" in attrs:
                coll = self.eval(attrs["for_each"], {}, f"{address} for_each")
                _check_for_each(coll, address)
                if isinstance(coll, dict):
                    items = list(coll.items())
                elif isinstance(coll, list):
                    if not all(isinstance(k, str) for k in coll):
                        raise EvalError(f"{address}: for_each over a set needs strings")
                    items = [(k, k) for k in coll]
                else:
                    raise EvalError(f"{address}: for_each needs a map or a set: {render(coll)}")
                for k, v in items:
                    instances[k] = Instance(self, block, mode, k, v)
                expanded = "for_each"
            elif "count" in attrs:
                n = self.eval(attrs["count"], {}, f"{address} count")
                if not isinstance(n, int) or isinstance(n, bool):
                    raise EvalError(f"{address}: count must be a known number: {render(n)}")
                for i in range(n):
                    instances[i] = Instance(self, block, mode, i)
                expanded = "count"
            else:
                instances[None] = Instance(self, block, mode, None)
                expanded = "single"
            self._groups[key] = ResourceGroup(instances, expanded, address)
        return self._groups[key]

    def resource_types(self, mode: str = "resource") -> set[str]:
        return {t for (m, t, _n) in self.resource_blocks if m == mode}

    def instances(self, type_: str | None = None, mode: str = "resource") -> list[Instance]:
        """Every instance (of one type), in file order."""
        out: list[Instance] = []
        for m, t, n in self.resource_blocks:
            if m == mode and (type_ is None or t == type_):
                out.extend(self.group(m, t, n).instances.values())
        return out

    def output(self, name: str) -> Any:
        block = self.output_blocks[name]
        value = self.eval(block.attributes()["value"], {}, f"output.{name}")
        # A root module's output is stored in the state: never an ephemeral value.
        _check_no_ephemeral({"value": value}, f"output.{name}")
        return value

    def validation_failures(self) -> list[str]:
        """Each variable `validation` whose condition is false for the value in use."""
        failures = []
        for name, block in self.variable_blocks.items():
            for v in block.blocks():
                if v.type != "validation":
                    continue
                attrs = v.attributes()
                ok = self.eval(attrs["condition"], {}, f"var.{name} validation")
                if ok is not True:
                    failures.append(f"var.{name} = {render(self.var(name))}: fails its validation")
        return failures

    # ---- evaluation

    def eval_body(self, body: Node, scope: Mapping[str, Any], where: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for node in _subtrees(body):
            if node.data == "attribute":
                parts = _subtrees(node)
                name = _name(parts[0])
                if name in META_ARGUMENTS:
                    continue
                out[name] = self.eval(parts[-1], scope, f"{where}.{name}")
            elif node.data == "block":
                block = Block.of(node, Path(where))
                if block.type in META_BLOCKS:
                    continue
                if block.type == "dynamic":
                    self._expand_dynamic(block, scope, where, out)
                else:
                    inner = self.eval_body(block.body, scope, f"{where}.{block.type}")
                    out.setdefault(block.type, []).append(inner)
        return out

    def _expand_dynamic(
        self, block: Block, scope: Mapping[str, Any], where: str, out: dict[str, Any]
    ) -> None:
        label = block.labels[0]
        attrs = block.attributes()
        iterator = label
        if "iterator" in attrs:
            iterator = _name(_subtrees(_subtrees(attrs["iterator"])[0])[0])
        content = [b for b in block.blocks() if b.type == "content"]
        if len(content) != 1:
            raise EvalError(f"{where}: dynamic {label!r} needs one content block")
        coll = self.eval(attrs["for_each"], scope, f"{where}.dynamic.{label}.for_each")
        # (Terraform would plan an unknown number of blocks; the tests need to see them.)
        _check_for_each(coll, f"{where}: dynamic {label!r}")
        blocks = out.setdefault(label, [])
        for k, v in _iterate(coll, where):
            inner_scope = {**scope, iterator: {"key": k, "value": v}}
            blocks.append(self.eval_body(content[0].body, inner_scope, f"{where}.{label}"))

    def eval(self, node: Node | Token, scope: Mapping[str, Any], where: str = "?") -> Any:
        try:
            return self._eval(node, scope)
        except EvalError as e:
            if str(e).startswith(where + ": ") or where == "?":
                raise
            raise EvalError(f"{where}: {e}") from e

    def _eval(self, node: Node | Token, scope: Mapping[str, Any]) -> Any:
        if isinstance(node, Token):
            raise EvalError(f"unexpected token {node!r}")
        kind = node.data
        kids = _children(node)
        if kind == "expr_term":
            inner = [k for k in kids if isinstance(k, Tree)]
            if len(inner) != 1:
                raise EvalError("malformed expression")
            return self._eval(inner[0], scope)
        if kind == "int_lit":
            return int(str(kids[0]))
        if kind == "float_lit":
            text = str(kids[0])
            number = float(text)
            return int(number) if number.is_integer() and "e" not in text.lower() else number
        if kind == "literal_value":
            return {"true": True, "false": False, "null": None}[str(kids[0])]
        if kind == "string":
            return self._string(node, scope)
        if kind in ("heredoc_template", "heredoc_template_trim"):
            return _heredoc(str(kids[0]), trim=kind.endswith("_trim"))
        if kind == "tuple":
            return [self._eval(k, scope) for k in kids if isinstance(k, Tree)]
        if kind == "object":
            return self._object(node, scope)
        if kind == "identifier":
            return self._root(str(kids[0]), scope)
        if kind in ("get_attr_expr_term", "index_expr_term", "full_splat_expr_term"):
            return self._traverse(node, scope)
        if kind == "attr_splat_expr_term":
            raise EvalError("the legacy splat `.*` is not supported here: use [*]")
        if kind == "function_call":
            return self._call(node, scope)
        if kind == "conditional":
            cond, then, other = (k for k in kids if isinstance(k, Tree))
            c = self._eval(cond, scope)
            if isinstance(c, Unknown):
                return Unknown(f"({c} ? ... : ...)")
            if not isinstance(c, bool):
                raise EvalError(f"condition is not a bool: {render(c)}")
            return self._eval(then if c else other, scope)
        if kind == "binary_op":
            left, term = (k for k in kids if isinstance(k, Tree))
            op_node, right = _subtrees(term)
            op = str(op_node.children[0])
            # Both sides, always: Terraform's && and || do not short-circuit either.
            return _binary(op, self._eval(left, scope), self._eval(right, scope))
        if kind == "unary_op":
            op = str(kids[0])
            value = self._eval(kids[1], scope)
            if isinstance(value, Unknown):
                return Unknown(f"{op}{value}")
            if op == "!":
                if not isinstance(value, bool):
                    raise EvalError(f"! needs a bool: {render(value)}")
                return not value
            return -_number(value)
        if kind == "for_tuple_expr":
            return self._for(node, scope, as_object=False)
        if kind == "for_object_expr":
            return self._for(node, scope, as_object=True)
        raise EvalError(f"unsupported expression: {kind}")

    def _string(self, node: Node, scope: Mapping[str, Any]) -> Any:
        parts: list[Any] = []
        for part in _subtrees(node):
            (inner,) = part.children
            if isinstance(inner, Token):
                text = str(inner)
                if inner.type == "ESCAPED_INTERPOLATION":
                    parts.append("$" + text[2:])
                elif inner.type == "ESCAPED_DIRECTIVE":
                    parts.append("%" + text[2:])
                else:
                    parts.append(_unescape(text))
            elif inner.data == "interpolation":
                expr = next(c for c in _children(inner) if isinstance(c, Tree))
                parts.append(_Interp(self._eval(expr, scope)))
            else:
                raise EvalError(f"template directives ({inner.data}) are not supported")
        if len(parts) == 1 and isinstance(parts[0], _Interp):
            return parts[0].value
        texts: list[str] = []
        known = True
        for p in parts:
            if isinstance(p, _Interp):
                if not is_known(p.value):
                    known = False
                    texts.append(
                        render(p.value) if not isinstance(p.value, Unknown) else p.value.text
                    )
                else:
                    texts.append(_to_string(p.value))
            else:
                texts.append(p)
        joined = "".join(texts)
        return joined if known else Unknown(joined)

    def _object(self, node: Node, scope: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for elem in _subtrees(node):
            key_node, value_node = _subtrees(elem)
            key_exprs = _subtrees(key_node)
            key: Any
            if not key_exprs:  # a keyword used as a key: { in = 1 }
                key = str(key_node.children[0])
            else:
                inner = _subtrees(key_exprs[0])
                bare = key_exprs[0].data == "expr_term" and len(inner) == 1
                if bare and inner[0].data in ("identifier", "literal_value"):
                    key = str(inner[0].children[0])  # { name = 1 }: the name itself
                else:
                    key = self._eval(key_exprs[0], scope)
            if isinstance(key, Unknown):
                raise EvalError(f"object key known only after apply: {key}")
            key = _to_string(key)
            if key in out:
                raise EvalError(f"duplicate object key {key!r}")
            out[key] = self._eval(value_node, scope)
        return out

    def _root(self, name: str, scope: Mapping[str, Any]) -> Any:
        if name in scope:
            return scope[name]
        if name in ("var", "local", "path", "data", "ephemeral", "terraform"):
            return _Namespace(self, name)
        if name in self.resource_types():
            return _Namespace(self, "resource:" + name)
        if name in ("each", "count", "self"):
            raise EvalError(f"{name} is not available here")
        raise EvalError(f"unknown name {name!r}")

    def _traverse(self, node: Node, scope: Mapping[str, Any]) -> Any:
        steps: list[Node] = []
        current: Node = node
        while current.data in ("get_attr_expr_term", "index_expr_term", "full_splat_expr_term"):
            base, step = _subtrees(current)
            steps.insert(0, step)
            inner = _subtrees(base)
            if (
                base.data == "expr_term"
                and len(inner) == 1
                and inner[0].data
                in (
                    "get_attr_expr_term",
                    "index_expr_term",
                    "full_splat_expr_term",
                )
            ):
                current = inner[0]
            else:
                current = base
                break
        value = self._eval(current, scope)
        return self._apply_steps(value, steps, scope, origin=None)

    def _step_key(self, step: Node, scope: Mapping[str, Any]) -> str | int | Unknown:
        if step.data == "get_attr":
            return _name(_subtrees(step)[0])
        if step.data == "braces_index":
            key = self._eval(_subtrees(step)[0], scope)
            if isinstance(key, (str, int, Unknown)) and not isinstance(key, bool):
                return key
            raise EvalError(f"cannot index with {render(key)}")
        if step.data == "short_index":
            return int(str(step.children[-1]))
        raise EvalError(f"unsupported traversal {step.data}")

    def _apply_steps(
        self, value: Any, steps: list[Node], scope: Mapping[str, Any], origin: str | None
    ) -> Any:
        for i, step in enumerate(steps):
            if step.data == "full_splat":
                rest = [*_subtrees(step), *steps[i + 1 :]]
                if isinstance(value, ResourceGroup):
                    items = list(value.instances.values())
                else:
                    items = value if isinstance(value, list) else [value]
                return [self._apply_steps(item, rest, scope, origin) for item in items]
            key = self._step_key(step, scope)
            text = f".{key}" if step.data == "get_attr" else f"[{render(key)}]"
            if isinstance(value, Unknown):
                if isinstance(key, Unknown):
                    return Unknown(f"{value.text}[{key}]")
                if value.ref is not None:
                    value = Unknown.of_ref(value.ref + text)
                else:
                    value = Unknown(value.text + text)
                continue
            if isinstance(key, Unknown):
                return Unknown(f"{render(value)}[{key}]")
            if isinstance(value, _Namespace):
                value, origin = value.step(key, step.data)
                continue
            if isinstance(value, ResourceGroup):
                if value.expanded != "single":
                    if key not in value.instances:
                        raise EvalError(f"{value.address} has no instance [{render(key)}]")
                    value = value.instances[key]
                    origin = value.address
                    continue
                value = value.instances[None]
            if isinstance(value, Instance):
                if step.data != "get_attr":
                    raise EvalError(f"{value.address} is a single instance, not indexable")
                assert isinstance(key, str)
                origin = f"{value.address}.{key}"
                value = value.attr(key)
                continue
            if isinstance(value, dict):
                if key in value:
                    value = value[key]
                    origin = origin + text if origin else None
                    continue
                if origin is not None:
                    rest_text = "".join(self._render_step(s, scope) for s in steps[i + 1 :])
                    return Unknown.of_ref(origin + text + rest_text)
                raise EvalError(f"no key {key!r} in {{{', '.join(sorted(map(str, value)))}}}")
            if isinstance(value, list):
                if not isinstance(key, int):
                    raise EvalError(f"a list is indexed by number, not {render(key)}")
                if 0 <= key < len(value):
                    value = value[key]
                    origin = origin + text if origin else None
                    continue
                if origin is not None:
                    rest_text = "".join(self._render_step(s, scope) for s in steps[i + 1 :])
                    return Unknown.of_ref(origin + text + rest_text)
                raise EvalError(f"index {key} out of range (length {len(value)})")
            raise EvalError(f"cannot take {text} of {render(value)}")
        if isinstance(value, ResourceGroup):
            return value.value()
        if isinstance(value, _Namespace):
            raise EvalError(f"{value.name} is not a value")
        return value

    def _render_step(self, step: Node, scope: Mapping[str, Any]) -> str:
        key = self._step_key(step, scope)
        return f".{key}" if step.data == "get_attr" else f"[{render(key)}]"

    def _call(self, node: Node, scope: Mapping[str, Any]) -> Any:
        parts = _children(node)
        name = _name(parts[0])
        args_node = next((p for p in parts if isinstance(p, Tree) and p.data == "arguments"), None)
        arg_nodes: list[Node] = []
        expand = False
        if args_node is not None:
            arg_nodes = [c for c in _children(args_node) if isinstance(c, Tree)]
            expand = any(isinstance(c, Token) and c.type == "ELLIPSIS" for c in args_node.children)
        if name in ("try", "can"):
            return self._try(name, arg_nodes, scope)
        fn = self.functions.get(name)
        if fn is None:
            raise EvalError(f"function {name}() is not supported by tests/infra/tfeval.py")
        args = [self._eval(a, scope) for a in arg_nodes]
        if expand:
            last = args.pop()
            if not isinstance(last, list):
                raise EvalError(f"{name}(...): expanding {render(last)}, not a list")
            args.extend(last)
        try:
            return fn(*args)
        except EvalError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, OSError, yaml.YAMLError) as e:
            raise EvalError(f"{name}({', '.join(render(a) for a in args)}): {e}") from e

    def _try(self, name: str, arg_nodes: list[Node], scope: Mapping[str, Any]) -> Any:
        if name == "can":
            try:
                value = self._eval(arg_nodes[0], scope)
            except EvalError:
                return False
            return True if is_known(value) else Unknown("can(...)")
        for a in arg_nodes:
            try:
                return self._eval(a, scope)
            except EvalError:
                continue
        raise EvalError("try(): no argument could be evaluated")

    def _for(self, node: Node, scope: Mapping[str, Any], *, as_object: bool) -> Any:
        kids = _subtrees(node)
        intro = kids[0]
        names = [str(n.children[0]) for n in _subtrees(intro) if n.data == "identifier"]
        coll_node = [n for n in _subtrees(intro) if n.data != "identifier"][-1]
        cond = next((k for k in kids if k.data == "for_cond"), None)
        body = [k for k in kids[1:] if k.data != "for_cond"]
        grouping = any(isinstance(c, Token) and c.type == "ELLIPSIS" for c in node.children)
        coll = self._eval(coll_node, scope)
        if isinstance(coll, Unknown):
            return Unknown(f"[for ... in {coll.text} ...]")
        results_list: list[Any] = []
        results_map: dict[str, Any] = {}
        for k, v in _iterate(coll, "for expression"):
            inner = dict(scope)
            if len(names) == 2:
                inner[names[0]], inner[names[1]] = k, v
            else:
                inner[names[0]] = v
            if cond is not None:
                keep = self._eval(_subtrees(cond)[0], inner)
                if isinstance(keep, Unknown):
                    return Unknown("[for ... if <known only after apply>]")
                if not isinstance(keep, bool):
                    raise EvalError(f"for-expression condition is not a bool: {render(keep)}")
                if not keep:
                    continue
            if not as_object:
                results_list.append(self._eval(body[0], inner))
                continue
            key = self._eval(body[0], inner)
            if isinstance(key, Unknown):
                return Unknown("{for ... : <key known only after apply> => ...}")
            key = _to_string(key)
            value = self._eval(body[1], inner)
            if grouping:
                results_map.setdefault(key, []).append(value)
            elif key in results_map:
                raise EvalError(f"duplicate key {key!r} in a for-expression (group with ...?)")
            else:
                results_map[key] = value
        return results_map if as_object else results_list


@dataclass(frozen=True)
class _Interp:
    value: Any


class _Namespace:
    """`var`, `local`, `path`, `data`, `data.TYPE`, `ephemeral`, `ephemeral.TYPE`, `terraform`
    and resource types."""

    def __init__(self, module: Module, name: str) -> None:
        self.module = module
        self.name = name

    def step(self, key: str | int, kind: str) -> tuple[Any, str | None]:
        if kind != "get_attr" or not isinstance(key, str):
            raise EvalError(f"{self.name} is not indexable")
        m = self.module
        if self.name == "var":
            return m.var(key), None
        if self.name == "local":
            return m.local(key), None
        if self.name == "path":
            if key in ("module", "root", "cwd"):
                # As when Terraform runs in the module's directory; relative paths in file()
                # and friends resolve against it.
                return ".", None
            raise EvalError(f"path.{key} is not defined")
        if self.name == "terraform":
            if key == "workspace":
                return "default", None
            raise EvalError(f"terraform.{key} is not supported")
        if self.name == "data":
            if key not in m.resource_types("data"):
                raise EvalError(f"no data source of type {key}")
            return _Namespace(m, "datatype:" + key), None
        if self.name == "ephemeral":
            if key not in m.resource_types("ephemeral"):
                raise EvalError(f"no ephemeral resource of type {key}")
            return _Namespace(m, "ephemeraltype:" + key), None
        if self.name.startswith("datatype:"):
            group = m.group("data", self.name.split(":", 1)[1], key)
            return group, group.address
        if self.name.startswith("ephemeraltype:"):
            group = m.group("ephemeral", self.name.split(":", 1)[1], key)
            return group, group.address
        if self.name.startswith("resource:"):
            group = m.group("resource", self.name.split(":", 1)[1], key)
            return group, group.address
        raise EvalError(f"{self.name}.{key} is not supported")


# By the providers' convention, a write-only argument's name ends in `_wo` (Terraform knows it
# from the provider schema, which is not available here).
WRITE_ONLY_SUFFIX = "_wo"


def _check_no_ephemeral(config: Any, where: str, name: str = "") -> None:
    """As Terraform ("Ephemeral value not allowed"): a value from an ephemeral resource may
    reach a managed resource or data source only through a write-only argument, which is
    neither planned nor stored, and never an output."""
    if isinstance(config, Unknown):
        if "${ephemeral." in config.text and not name.endswith(WRITE_ONLY_SUFFIX):
            raise EvalError(
                f"{where}: {config.text} is ephemeral: only a write-only argument "
                f"(`*{WRITE_ONLY_SUFFIX}`) may take it, or it would be stored in the plan and state"
            )
    elif isinstance(config, dict):
        for key, value in config.items():
            _check_no_ephemeral(value, f"{where}.{key}", str(key))
    elif isinstance(config, list):
        for i, value in enumerate(config):
            _check_no_ephemeral(value, f"{where}[{i}]", name)


def _check_for_each(coll: Any, where: str) -> None:
    """As Terraform: a map's keys and a set's elements must be known at plan time (a map's
    values need not be)."""
    if isinstance(coll, Unknown) or (isinstance(coll, list) and not is_known(coll)):
        raise EvalError(f"{where}: for_each is known only after apply: {render(coll)}")


def _iterate(coll: Any, where: str) -> Iterator[tuple[Any, Any]]:
    if isinstance(coll, ResourceGroup):
        coll = coll.value()
    if isinstance(coll, dict):
        yield from sorted(coll.items(), key=lambda kv: kv[0])
    elif isinstance(coll, list):
        yield from enumerate(coll)
    elif isinstance(coll, Instance):
        raise EvalError(f"{where}: cannot iterate over the single instance {coll.address}")
    else:
        raise EvalError(f"{where}: cannot iterate over {render(coll)}")


def _heredoc(token: str, *, trim: bool) -> str:
    lines = token.split("\n")
    body = lines[1:-2]  # first line: <<MARKER; last two: the closing marker and ""
    if trim:
        indents = [len(line) - len(line.lstrip()) for line in body if line.strip()]
        cut = min(indents, default=0)
        body = [line[cut:] for line in body]
    text = "\n".join(body) + "\n"
    if "${" in text or "%{" in text:
        raise EvalError("templates in heredocs are not supported by tests/infra/tfeval.py")
    return text


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    raise EvalError(f"cannot use {render(value)} as a string")


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise EvalError(f"expected a number, got {render(value)}")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
        try:
            return float(value)
        except ValueError:
            pass
    raise EvalError(f"expected a number, got {render(value)}")


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return bool(a == b)


def _binary(op: str, a: Any, b: Any) -> Any:
    if not is_known(a) or not is_known(b):
        return Unknown(f"({render(a)} {op} {render(b)})")
    if op == "==":
        return _equal(a, b)
    if op == "!=":
        return not _equal(a, b)
    if op in ("&&", "||"):
        if not isinstance(a, bool) or not isinstance(b, bool):
            raise EvalError(f"{op} needs bools: {render(a)}, {render(b)}")
        return (a and b) if op == "&&" else (a or b)
    x, y = _number(a), _number(b)
    ops: dict[str, Callable[[Any, Any], Any]] = {
        "+": lambda p, q: p + q,
        "-": lambda p, q: p - q,
        "*": lambda p, q: p * q,
        "/": lambda p, q: p / q,
        "%": lambda p, q: p % q,
        "<": lambda p, q: p < q,
        ">": lambda p, q: p > q,
        "<=": lambda p, q: p <= q,
        ">=": lambda p, q: p >= q,
    }
    if op not in ops:
        raise EvalError(f"unsupported operator {op}")
    return ops[op](x, y)


# --------------------------------------------------------------------------------------------
# Functions


def _functions(module: Module) -> dict[str, Callable[..., Any]]:
    base = module.directory

    def path_of(p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() else base / q

    def needs_known(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any) -> Any:
            if not all(is_known(a) for a in args):
                return Unknown(f"{name}({', '.join(render(a) for a in args)})")
            return fn(*args)

        return wrapped

    def as_list(value: Any) -> list[Any]:
        if isinstance(value, ResourceGroup):
            value = value.value()
        if isinstance(value, list):
            return value
        raise EvalError(f"expected a list, got {render(value)}")

    def as_map(value: Any) -> dict[str, Any]:
        if isinstance(value, ResourceGroup):
            value = value.value()
        if isinstance(value, dict):
            return value
        raise EvalError(f"expected a map, got {render(value)}")

    def distinct(values: Any) -> list[Any]:
        out: list[Any] = []
        for v in as_list(values):
            if not any(_equal(v, o) for o in out):
                out.append(v)
        return out

    def toset(values: Any) -> list[Any]:
        items = distinct(values)
        if all(isinstance(v, str) for v in items):
            return sorted(items)
        return items

    def merge(*maps: Any) -> Any:
        out: dict[str, Any] = {}
        for m in maps:
            if m is None:
                continue
            if isinstance(m, Unknown):
                return Unknown(f"merge(..., {m}, ...)")
            out.update(as_map(m))
        return out

    def concat(*lists: Any) -> Any:
        out: list[Any] = []
        for x in lists:
            if isinstance(x, Unknown):
                return Unknown(f"concat(..., {x}, ...)")
            out.extend(as_list(x))
        return out

    def lookup(m: Any, key: str, *default: Any) -> Any:
        mm = as_map(m)
        if key in mm:
            return mm[key]
        if default:
            return default[0]
        raise EvalError(f"lookup: no key {key!r}")

    def flatten(values: Any) -> list[Any]:
        out: list[Any] = []
        for v in as_list(values):
            out.extend(flatten(v) if isinstance(v, list) else [v])
        return out

    def fmt(spec: str, *args: Any) -> str:
        it = iter(args)

        def repl(m: re.Match[str]) -> str:
            verb = m.group(1)
            if verb == "%":
                return "%"
            value = next(it)
            if verb == "q":
                return json.dumps(_to_string(value))
            if verb == "d":
                return str(int(_number(value)))
            return _to_string(value)

        return re.sub(r"%([sdvq%])", repl, spec)

    def replace(s: str, old: str, new: str) -> str:
        if len(old) > 1 and old.startswith("/") and old.endswith("/"):
            return re.sub(old[1:-1], new.replace("$", "\\"), s)
        return s.replace(old, new)

    def regex(pattern: str, s: str) -> Any:
        m = re.search(pattern, s)
        if m is None:
            raise EvalError(f"regex {pattern!r} does not match {s!r}")
        if m.groupdict():
            return m.groupdict()
        if m.groups():
            return list(m.groups())
        return m.group(0)

    def coalesce(*values: Any) -> Any:
        for v in values:
            if v is not None and v != "":
                return v
        raise EvalError("coalesce: no non-null, non-empty argument")

    def one(values: Any) -> Any:
        items = as_list(values)
        if len(items) > 1:
            raise EvalError(f"one: {len(items)} elements")
        return items[0] if items else None

    def length(value: Any) -> int:
        if isinstance(value, ResourceGroup):
            value = value.value()
        if isinstance(value, (list, dict, str)):
            return len(value)
        raise EvalError(f"length of {render(value)}")

    def file_hash(algorithm: str) -> Callable[[str], Any]:
        def digest(p: str) -> Any:
            path = path_of(p)
            if not path.is_file():
                # Made by a build step (e.g. the function bundle); its hash is a plan-time input
                # that the tests do not need.
                return Unknown(f"{algorithm}({p})")
            return hashlib.new(algorithm.removeprefix("file"), path.read_bytes()).hexdigest()

        return digest

    def fileset(directory: str, pattern: str) -> list[str]:
        root = path_of(directory)
        matches = glob.glob(pattern, root_dir=root, recursive=True)
        return sorted(m for m in matches if (root / m).is_file())

    known: dict[str, Callable[..., Any]] = {
        "abs": abs,
        "alltrue": lambda xs: all(x is True or x == "true" for x in as_list(xs)),
        "anytrue": lambda xs: any(x is True or x == "true" for x in as_list(xs)),
        "abspath": lambda p: str(path_of(p).resolve()),
        "base64encode": lambda s: base64.b64encode(s.encode()).decode(),
        "basename": os.path.basename,
        "ceil": math.ceil,
        "chomp": lambda s: s.rstrip("\r\n"),
        "compact": lambda xs: [x for x in as_list(xs) if x not in (None, "")],
        "contains": lambda xs, v: any(_equal(x, v) for x in as_list(xs)),
        "dirname": os.path.dirname,
        "distinct": distinct,
        "element": lambda xs, i: as_list(xs)[i % len(as_list(xs))],
        "endswith": lambda s, suffix: s.endswith(suffix),
        "file": lambda p: path_of(p).read_text(encoding="utf-8"),
        "fileexists": lambda p: path_of(p).is_file(),
        "filemd5": file_hash("filemd5"),
        "filesha256": file_hash("filesha256"),
        "fileset": fileset,
        "floor": math.floor,
        "format": fmt,
        "formatlist": lambda spec, xs: [fmt(spec, x) for x in as_list(xs)],
        "join": lambda sep, xs: sep.join(_to_string(x) for x in as_list(xs)),
        "jsondecode": json.loads,
        "jsonencode": lambda v: json.dumps(v, separators=(",", ":"), sort_keys=True),
        "keys": lambda m: sorted(as_map(m)),
        "lower": str.lower,
        "max": lambda *xs: max(_number(x) for x in xs),
        "md5": lambda s: hashlib.md5(s.encode(), usedforsecurity=False).hexdigest(),
        "min": lambda *xs: min(_number(x) for x in xs),
        "range": lambda *a: list(range(*(int(_number(x)) for x in a))),
        "regex": regex,
        "regexall": lambda p, s: [m.group(0) for m in re.finditer(p, s)],
        "replace": replace,
        "reverse": lambda xs: list(reversed(as_list(xs))),
        "setunion": lambda *xs: toset(concat(*xs)),
        "sha256": lambda s: hashlib.sha256(s.encode()).hexdigest(),
        "sort": lambda xs: sorted(_to_string(x) for x in as_list(xs)),
        "split": lambda sep, s: s.split(sep),
        "startswith": lambda s, prefix: s.startswith(prefix),
        "strcontains": lambda s, sub: sub in s,
        "substr": lambda s, off, n: s[off:] if n < 0 else s[off : off + n],
        "tobool": lambda v: v if isinstance(v, bool) else {"true": True, "false": False}[v],
        "tolist": lambda xs: list(as_list(xs)),
        "tomap": lambda m: dict(as_map(m)),
        "tonumber": _number,
        "toset": toset,
        "tostring": lambda v: None if v is None else _to_string(v),
        "trim": lambda s, chars: s.strip(chars),
        "trimprefix": lambda s, prefix: s.removeprefix(prefix),
        "trimspace": str.strip,
        "trimsuffix": lambda s, suffix: s.removesuffix(suffix),
        "upper": str.upper,
        "values": lambda m: [v for _k, v in sorted(as_map(m).items())],
        "yamldecode": yaml.safe_load,
        "zipmap": lambda ks, vs: dict(zip(as_list(ks), as_list(vs), strict=True)),
    }
    # Structural functions work on containers whose leaves may be unknown; the others need
    # every argument known, else their result is unknown too.
    structural: dict[str, Callable[..., Any]] = {
        "coalesce": coalesce,
        "concat": concat,
        "flatten": flatten,
        "keys": known["keys"],
        "length": length,
        "lookup": lookup,
        "merge": merge,
        "one": one,
        "tolist": known["tolist"],
        "tomap": known["tomap"],
        "values": known["values"],
    }
    table = {name: needs_known(name, fn) for name, fn in known.items()}
    table.update(structural)
    return table


def split_ref(text: str) -> str | None:
    """The reference inside `${...}` when `text` is exactly one reference, else None."""
    m = re.fullmatch(r"\$\{([^{}]+)\}", text)
    return m.group(1) if m else None


def instances_by_address(module: Module) -> dict[str, Instance]:
    return {
        i.address: i
        for mode in ("resource", "data", "ephemeral")
        for i in module.instances(mode=mode)
    }


def referenced_instance(module: Module, value: Any, attributes: Sequence[str]) -> Instance | None:
    """The instance whose attribute (one of `attributes`) `value` refers to, if any."""
    if not isinstance(value, Unknown) or value.ref is None:
        return None
    by_address = instances_by_address(module)
    for attr in attributes:
        suffix = "." + attr
        if value.ref.endswith(suffix):
            found = by_address.get(value.ref.removesuffix(suffix))
            if found is not None:
                return found
    return None
