"""Edit list properties of an XMP sidecar in place: only the bytes of the lists that change are
rewritten, every other byte of the file (other tools' properties, their layout, attributes,
comments, xpacket padding, line endings, a BOM) stays exactly as it was.

A library that parses XMP into a tree and serialises it again (exiv2, the XMP Toolkit) keeps the
values but not the bytes, and exiv2 turns every list into an `rdf:Seq`. Here the standard library's
expat parser (the one the XMP Toolkit itself is built on) only locates things: it reports the byte
offset of every tag, and the new text is spliced between the original bytes. The result is parsed
again and its lists compared with what was asked before anything is returned, so a splice that
went wrong raises instead of writing a broken sidecar.

Scope: UTF-8 XMP in RDF/XML (what digiKam, darktable, Lightroom, exiv2 and exiftool write).
Anything else raises `XmpSyntaxError` with one sentence, and the caller leaves the file alone.
"""

from __future__ import annotations

import re
import xml.parsers.expat as expat
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
CONTAINERS = ("Bag", "Seq", "Alt")
_SEP = "\x01"
_ATTRIBUTE = re.compile(rb'(\s+)([^\s=/>]+)\s*=\s*("[^"]*"|\'[^\']*\')')
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class XmpSyntaxError(ValueError):
    """The text is not XMP this module can edit; the message is one sentence."""


@dataclass(frozen=True)
class Prop:
    """A property by namespace URI and name; `prefix` is used only where the file binds none."""

    uri: str
    name: str
    prefix: str

    def label(self) -> str:
        return f"{self.prefix}:{self.name}"


@dataclass(eq=False)
class _Node:
    uri: str | None
    name: str
    qname: str  # as written in the file, prefix included
    start: int  # offset of '<'
    scope: dict[str, str]  # prefix ("" for the default namespace) -> URI in force at this element
    parent: _Node | None
    attributes: list[tuple[str | None, str]]
    tag_end: int = 0  # offset just after the start tag's '>'
    end: int = 0  # offset just after the element
    self_closing: bool = False
    children: list[_Node] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def is_(self, uri: str, name: str) -> bool:
        return self.uri == uri and self.name == name


def _text(value: str) -> str:
    """Element content: markup escaped, a carriage return as a reference (a parser would read a
    literal one as a line feed)."""
    return escape(value, {"\r": "&#13;"})


def clean_text(value: str) -> str:
    """`value` without the characters XML 1.0 cannot carry (control characters)."""
    return _NOT_XML.sub("", value)


class XmpDocument:
    """One sidecar's bytes, parsed for positions; list edits accumulate and `result()` splices them."""

    def __init__(self, data: bytes) -> None:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise XmpSyntaxError("it is UTF-16 text; clipdesk edits UTF-8 sidecars only")
        self.data = data
        self.newline = "\r\n" if b"\r\n" in data else "\n"
        self.root = _parse(data)
        self.descriptions = _descriptions(self.root)
        self._edits: list[tuple[int, int, str]] = []
        self._expected: dict[Prop, tuple[list[str], str | None]] = {}
        self._declared: dict[int, dict[str, str]] = {}  # description start -> prefix -> URI to add
        self._appends: dict[int, tuple[_Node, str | None, list[str]]] = {}  # parent start -> new children

    # -- reading ---------------------------------------------------------------------------------
    def items(self, prop: Prop) -> list[str]:
        """The texts of the property's list items, [] when it is absent."""
        node = self._find(prop)
        container = _container(node, prop) if node is not None else None
        return [t for t in (_li_text(li) for li in _items(container)) if t is not None]

    def kind(self, prop: Prop) -> str | None:
        """"Bag", "Seq" or "Alt" for a list property present in the file, else None."""
        node = self._find(prop)
        container = _container(node, prop) if node is not None else None
        return container.name if container is not None else None

    # -- editing ---------------------------------------------------------------------------------
    def update(self, prop: Prop, drop: set[str], add: list[str], kind: str = "Bag") -> None:
        """Remove the items whose text is in `drop`, append `add`; the list's other items and its
        kind (an existing Seq stays a Seq) are kept. A missing property is created as `kind`."""
        add = [clean_text(a) for a in add]
        node = self._find(prop)
        container = _container(node, prop) if node is not None else None
        if container is None:
            self._expected[prop] = (add, kind)
            self._put(prop, node, add, kind)
            return
        kept = []
        for li in _items(container):
            text = _li_text(li)
            if text is not None and text in drop:
                self._edits.append((_space_before(self.data, li.start), li.end, ""))
            elif text is not None:
                kept.append(text)
        self._expected[prop] = (kept + add, container.name)
        if add:
            self._append_items(container, add)

    def replace(self, prop: Prop, values: list[str], kind: str = "Bag") -> None:
        """The property becomes exactly `values` (a property clipdesk owns: rewritten whole)."""
        values = [clean_text(v) for v in values]
        self._expected[prop] = (values, kind)
        self._put(prop, self._find(prop), values, kind)

    def result(self) -> bytes:
        """The original bytes with every edit spliced in, checked by parsing them again."""
        edits = list(self._edits) + [self._append_edit(*queued) for queued in self._appends.values()]
        for description in self.descriptions:
            declared = self._declared.get(description.start)
            if declared:
                edits.append(self._declaration_edit(description, declared))
        edits.sort(key=lambda e: (e[0], e[1]))
        pieces, at = [], 0
        for start, end, text in edits:
            if start < at:
                raise XmpSyntaxError("two edits overlap (a clipdesk bug); the file was left as it is")
            pieces += [self.data[at:start], text.encode("utf-8")]
            at = end
        out = b"".join(pieces) + self.data[at:]
        self._check(out)
        return out

    # -- internals -------------------------------------------------------------------------------
    def _find(self, prop: Prop) -> _Node | None:
        for description in self.descriptions:
            if any(uri == prop.uri and name == prop.name for uri, name in description.attributes):
                raise XmpSyntaxError(f"its {prop.label()} is a single value, not a list")
            for child in description.children:
                if child.is_(prop.uri, prop.name):
                    return child
        return None

    def _put(self, prop: Prop, node: _Node | None, values: list[str], kind: str) -> None:
        """Write the property whole: over an existing element, else as the last child of a
        description (declaring its namespace there when the file has not)."""
        if node is not None:
            self._edits.append((node.start, node.end,
                                self._element(node.qname, node.scope, values, kind, _indent(self.data, node))))
            return
        description = self._target()
        qname = self._qname(description, prop)
        depth_indent = self._slot_indent(description)
        text = self._element(qname, {**description.scope, **self._declared.get(description.start, {})},
                             values, kind, depth_indent)
        self._append_child(description, text, depth_indent)

    def _target(self) -> _Node:
        """The description new properties go into: the first that already has element children
        (digiKam, darktable and exiv2 write one), else the first."""
        if not self.descriptions:
            raise XmpSyntaxError("it has no rdf:Description to add keywords to")
        return next((d for d in self.descriptions if d.children), self.descriptions[0])

    def _qname(self, description: _Node, prop: Prop) -> str:
        declared = self._declared.setdefault(description.start, {})
        scope = {**description.scope, **declared}
        for prefix, uri in scope.items():
            if uri == prop.uri:
                return f"{prefix}:{prop.name}" if prefix else prop.name
        prefix, n = prop.prefix, 1
        while prefix in scope:  # the usual prefix means something else in this file
            prefix, n = f"{prop.prefix}{n}", n + 1
        declared[prefix] = prop.uri
        return f"{prefix}:{prop.name}"

    def _element(self, qname: str, scope: dict[str, str], values: list[str], kind: str,
                 indent: str | None) -> str:
        rdf = _rdf_prefix(scope)
        lines = [(0, f"<{qname}>")]
        if values:
            lines += [(1, f"<{rdf}{kind}>")] + [(2, f"<{rdf}li>{_text(v)}</{rdf}li>") for v in values]
            lines += [(1, f"</{rdf}{kind}>")]
        else:
            lines.append((1, f"<{rdf}{kind}/>"))
        lines.append((0, f"</{qname}>"))
        if indent is None:  # the file is written on one line: so is the new element
            return "".join(text for _, text in lines)
        step = self._step()
        return (self.newline + indent).join(step * depth + text for depth, text in lines)

    def _append_items(self, container: _Node, values: list[str]) -> None:
        rdf = _rdf_prefix(container.scope)
        existing = [li for li in container.children if li.is_(RDF, "li")]
        if existing:
            last = existing[-1]
            space = self.data[_space_before(self.data, last.start):last.start].decode("utf-8")
            qname = last.qname
            self._edits.append((last.end, last.end,
                                "".join(f"{space}<{qname}>{_text(v)}</{qname}>" for v in values)))
            return
        indent = self._slot_indent(container)
        items = [f"<{rdf}li>{_text(v)}</{rdf}li>" for v in values]
        self._append_child(container, (self.newline + indent).join(items) if indent is not None
                           else "".join(items), indent)

    def _append_child(self, parent: _Node, text: str, indent: str | None) -> None:
        """Queue `text` (already indented for its depth) as a new last child of `parent`; the
        children queued for one parent become one edit (a `.../>` tag is opened only once)."""
        self._appends.setdefault(parent.start, (parent, indent, []))[2].append(text)

    def _append_edit(self, parent: _Node, indent: str | None, texts: list[str]) -> tuple[int, int, str]:
        if parent.children:
            last = parent.children[-1]
            space = self.data[_space_before(self.data, last.start):last.start].decode("utf-8")
            return last.end, last.end, "".join(space + text for text in texts)
        lead = "" if indent is None else self.newline + indent
        body = "".join(lead + text for text in texts)
        if not parent.self_closing:
            return parent.tag_end, parent.tag_end, body
        own = _indent(self.data, parent)  # <x .../> becomes <x ...> body </x>
        close = ("" if own is None else self.newline + own) + f"</{parent.qname}>"
        return parent.tag_end - 2, parent.tag_end, ">" + body + close

    def _slot_indent(self, parent: _Node) -> str | None:
        """The indentation of a new last child: its siblings', else one step more than the
        parent's; None where the file is written on one line."""
        if parent.children:
            return _indent(self.data, parent.children[-1])
        own = _indent(self.data, parent)
        return None if own is None else own + self._step()

    def _step(self) -> str:
        """One level of indentation as this file writes it (exiv2: one space; others two)."""
        for node in _walk(self.root):
            if node.parent is not None:
                inner, outer = _indent(self.data, node), _indent(self.data, node.parent)
                if inner is not None and outer is not None and inner.startswith(outer) and inner != outer:
                    return inner[len(outer):]
        return " "

    def _declaration_edit(self, description: _Node, declared: dict[str, str]) -> tuple[int, int, str]:
        """xmlns attributes added to a description's start tag, after its last declaration (or
        its last attribute) and spaced like it."""
        tag = self.data[description.start:description.tag_end]
        found = list(_ATTRIBUTE.finditer(tag))
        anchor = next((m for m in reversed(found) if m.group(2).startswith(b"xmlns")), found[-1] if found else None)
        if anchor is None:
            at, space = len(description.qname) + 1, " "
        else:
            at, space = anchor.end(), anchor.group(1).decode("utf-8")
        text = "".join(f'{space}xmlns:{prefix}="{escape(uri, {chr(34): "&quot;"})}"'
                       for prefix, uri in declared.items())
        return description.start + at, description.start + at, text

    def _check(self, out: bytes) -> None:
        again = XmpDocument(out)
        for prop, (values, kind) in self._expected.items():
            if again.items(prop) != values or again.kind(prop) != kind:
                raise XmpSyntaxError(f"its {prop.label()} did not read back as written (a clipdesk bug); "
                                     "the file was left as it is")


# -- parsing ------------------------------------------------------------------------------------
def _parse(data: bytes) -> _Node:
    """The element tree with byte offsets. DTDs are refused (XMP has none; entity expansion)."""
    parser = expat.ParserCreate(namespace_separator=_SEP)
    parser.namespace_prefixes = True
    parser.buffer_text = True
    pending: dict[str, str] = {}
    stack: list[_Node] = []
    roots: list[_Node] = []

    def declaration(_version, encoding, _standalone) -> None:
        if encoding and encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
            raise XmpSyntaxError(f"it declares the {encoding} encoding; clipdesk edits UTF-8 sidecars only")

    def doctype(*_args) -> None:
        raise XmpSyntaxError("it has a DOCTYPE, which XMP does not allow")

    def namespace(prefix, uri) -> None:
        pending[prefix or ""] = uri

    def start(name, attributes) -> None:
        parent = stack[-1] if stack else None
        scope = {**(parent.scope if parent else {}), **pending}
        pending.clear()
        uri, local, qname = _split(name)
        node = _Node(uri, local, qname, parser.CurrentByteIndex, scope, parent,
                     [_split(a)[:2] for a in attributes])
        node.tag_end = _tag_end(data, node.start)
        node.self_closing = data[node.tag_end - 2:node.tag_end] == b"/>"
        (parent.children if parent else roots).append(node)
        stack.append(node)

    def end(_name) -> None:
        node = stack.pop()
        node.end = node.tag_end if node.self_closing else data.index(b">", parser.CurrentByteIndex) + 1

    def text(chars) -> None:
        if stack:
            stack[-1].text.append(chars)

    parser.XmlDeclHandler = declaration
    parser.StartDoctypeDeclHandler = doctype
    parser.StartNamespaceDeclHandler = namespace
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(data, True)
    except expat.ExpatError as error:
        raise XmpSyntaxError(f"it is not well-formed XML ({expat.errors.messages[error.code]}, "
                             f"line {error.lineno})") from None
    return roots[0]


def _split(name: str) -> tuple[str | None, str, str]:
    """expat's "uri SEP local SEP prefix" as (uri, local, qname as written)."""
    parts = name.split(_SEP)
    if len(parts) == 1:
        return None, parts[0], parts[0]
    if len(parts) == 2:
        return parts[0], parts[1], parts[1]
    return parts[0], parts[1], f"{parts[2]}:{parts[1]}"


def _tag_end(data: bytes, start: int) -> int:
    """The offset after a start tag's '>' (a '>' inside a quoted attribute value does not count)."""
    at, quote = start + 1, None
    while True:
        byte = data[at:at + 1]
        if quote:
            quote = None if byte == quote else quote
        elif byte in (b'"', b"'"):
            quote = byte
        elif byte == b">":
            return at + 1
        at += 1


def _walk(node: _Node):
    yield node
    for child in node.children:
        yield from _walk(child)


def _descriptions(root: _Node) -> list[_Node]:
    """The top-level rdf:Description elements: every one describes the same resource in XMP."""
    rdf = next((n for n in _walk(root) if n.is_(RDF, "RDF")), None)
    if rdf is None:
        raise XmpSyntaxError("it has no rdf:RDF element, so it is not XMP")
    return [child for child in rdf.children if child.is_(RDF, "Description")]


def _container(node: _Node, prop: Prop) -> _Node | None:
    """The property's rdf:Bag/Seq/Alt; None for an empty property, which is rewritten whole."""
    for child in node.children:
        if child.uri == RDF and child.name in CONTAINERS:
            return child
    if node.children or "".join(node.text).strip():
        raise XmpSyntaxError(f"its {prop.label()} is not a list")
    return None


def _items(container: _Node | None) -> list[_Node]:
    return [] if container is None else [c for c in container.children if c.is_(RDF, "li")]


def _li_text(li: _Node) -> str | None:
    """An item's text; None for a structured item (never matched, never removed)."""
    return None if li.children else "".join(li.text)


def _rdf_prefix(scope: dict[str, str]) -> str:
    for prefix, uri in scope.items():
        if uri == RDF:
            return f"{prefix}:" if prefix else ""
    raise XmpSyntaxError("it does not bind the RDF namespace")


def _space_before(data: bytes, at: int) -> int:
    """The start of the whitespace run that ends at `at`."""
    while at > 0 and data[at - 1:at] in (b" ", b"\t", b"\r", b"\n"):
        at -= 1
    return at


def _indent(data: bytes, node: _Node) -> str | None:
    """The indentation of the line the element starts, or None when it does not start a line."""
    line = data.rfind(b"\n", 0, node.start) + 1
    lead = data[line:node.start]
    if line == 0 or lead.strip(b" \t"):
        return None
    return lead.decode("utf-8")
