"""The MSL language server (``msl lsp``): the checker, linter and formatter in an editor.

Diagnostics are ``msl lint``'s — the same parse, check and lint functions, so the same
messages and spans — published when a document is opened, changed or saved. The text
checked is the editor's, unsaved changes included, and so is that of every imported file
open in the editor. A problem inside an imported file is shown on the `import` that
leads to it, with its own location attached.

Hover, completion, go to definition and the outline read what the checker found: the
declarations and the types of the checked spec, the built-in registry's signatures and
documentation, the built-in lexicons and the data files beside the spec. Formatting is
``msl fmt``'s. While the text being typed does not parse, completion and the outline use
the document's latest version that did.

Everything runs on the server's one thread: the parser keeps module state, and checking
a spec takes milliseconds (lint's z3 questions are bounded in work, see :mod:`msl.lint`).
This module imports pygls; the command line imports it only for ``msl lsp``.
"""

from __future__ import annotations

import inspect
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from msl import __version__, ast
from msl import types as T
from msl.builtins import Builtin, functions, lookup, measurements
from msl.builtins.data import resolve_data_path
from msl.check import analyse_file
from msl.errors import MslError, Severity, SpecError, SpecErrors
from msl.fmt import format_parsed, item_head, statement
from msl.ir import CheckedSpec, Symbol
from msl.lint import lint_models, lint_spec
from msl.load import ParseCache, display_path
from msl.parse import Parsed, keywords, parse_source
from msl.pipeline import _unique
from msl.source import Source, Span

#: Completion lists at most this many data files found beside a spec.
MAX_DATA_FILES = 200


@dataclass(frozen=True)
class Analysis:
    """What one version of a document says: its parse, its checked spec, its problems."""

    uri: str
    version: int | None
    text: str
    #: where the document is (or would be) on disk: its imports and data are relative to it
    path: Path
    #: the file name its spans carry, as ``msl lint`` shows it
    name: str
    parsed: Parsed | None
    spec: CheckedSpec | None
    problems: list[MslError]

    @cached_property
    def lines(self) -> tuple[str, ...]:
        return self.parsed.source.lines if self.parsed is not None else Source(self.name, self.text).lines


class MslLanguageServer(LanguageServer):
    """The server's state: the latest analysis of each open document."""

    def __init__(self) -> None:
        super().__init__("msl", __version__)
        self.analyses: dict[str, Analysis] = {}
        #: the latest analysis that parsed, per document (for completion and the outline)
        self.parsed: dict[str, Analysis] = {}
        #: parses of open documents, by URI: (version, text, result)
        self._parses: dict[str, tuple[int | None, str, Parsed | SpecErrors]] = {}

    # ── documents ────────────────────────────────────────────────────────────────────────

    def path_of(self, uri: str) -> Path:
        """The file of a document; an unsaved one is taken to be in the working directory."""
        path = to_fs_path(uri) if uri.startswith("file:") else None
        if path is not None:
            return Path(path)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", uri.rsplit("/", 1)[-1].rsplit(":", 1)[-1]) or "untitled"
        return Path.cwd() / (stem if stem.endswith(".msl") else stem + ".msl")

    def folder_of(self, path: Path) -> Path:
        """The folder a spec's reads must stay inside: the innermost workspace folder that
        holds it (what ``msl lint`` run there allows), else its own folder."""
        roots = [Path(p) for f in self.workspace.folders.values() if (p := to_fs_path(f.uri))]
        if self.workspace.root_path:
            roots.append(Path(self.workspace.root_path))
        holding = [r for r in roots if r.resolve() in path.resolve().parents]
        return max(holding, key=lambda r: len(r.resolve().parts)) if holding else path.parent

    def uri_of(self, file: str) -> str:
        """The URI of a file named the way spans name it."""
        for analysis in self.analyses.values():
            if analysis.name == file:
                return analysis.uri
        return from_fs_path(str(Path(file).absolute())) or file

    def parse(self, uri: str) -> tuple[str, Parsed | SpecErrors]:
        """The parse of an open document's current text (kept while the text is unchanged)."""
        doc = self.workspace.get_text_document(uri)
        text = doc.source
        known = self._parses.get(uri)
        if known is not None and known[0] == doc.version and known[1] == text:
            return text, known[2]
        try:
            result: Parsed | SpecErrors = parse_source(Source(display_path(self.path_of(uri)), text))
        except SpecErrors as exc:
            result = exc
        self._parses[uri] = (doc.version, text, result)
        return text, result

    def analyse(self, uri: str) -> Analysis:
        """Parse, check and lint a document as ``msl lint`` would, on the editor's text."""
        doc = self.workspace.get_text_document(uri)
        known = self.analyses.get(uri)
        if known is not None and known.version == doc.version and known.text == doc.source:
            return known
        path = self.path_of(uri)
        cache: ParseCache = {}
        for other in list(self.workspace.text_documents):
            other_path = self.path_of(other)
            if other != uri and other_path.suffix == ".msl" and other.startswith("file:"):
                cache[other_path.resolve()] = self.parse(other)[1]
        text, parsed = self.parse(uri)
        cache[path.resolve()] = parsed
        spec: CheckedSpec | None = None
        problems: list[MslError] = []
        try:
            spec, problems = analyse_file(path, cache=cache, folder=self.folder_of(path))
            if spec is not None and not any(p.severity is Severity.ERROR for p in problems):
                problems = problems + lint_spec(spec) + lint_models(spec)
        except MslError as exc:
            problems = problems + [exc]
        except Exception as exc:  # a bug in MSL must not take the editor's server down
            self.window_log_message(lsp.LogMessageParams(lsp.MessageType.Error, f"msl: internal error: {exc!r}"))
            problems = problems + [
                SpecError(
                    f"internal error (a bug in MSL, please report it): {type(exc).__name__}: {exc}",
                    Span.point(display_path(path)),
                )
            ]
        analysis = Analysis(uri, doc.version, text, path, display_path(path),
                            parsed if isinstance(parsed, Parsed) else None, spec, _unique(problems))
        self.analyses[uri] = analysis
        if analysis.parsed is not None:
            self.parsed[uri] = analysis
        return analysis

    def refresh(self, uri: str) -> None:
        """Check a document and publish its diagnostics, then those of the open documents
        that import it (their diagnostics may change with it)."""
        changed = self.analyse(uri)
        self.publish(changed)
        key = changed.path.resolve()
        for other, analysis in list(self.analyses.items()):
            if other != uri and (analysis.spec is None or key in analysis.spec.modules):
                self.analyses.pop(other)
                self.publish(self.analyse(other))

    def forget(self, uri: str) -> None:
        closed = self.analyses.pop(uri, None)
        self.parsed.pop(uri, None)
        self._parses.pop(uri, None)
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
        if closed is not None:  # documents importing it now read it from disk
            key = closed.path.resolve()
            for other, analysis in list(self.analyses.items()):
                if analysis.spec is None or key in analysis.spec.modules:
                    self.analyses.pop(other)
                    self.publish(self.analyse(other))

    # ── positions ────────────────────────────────────────────────────────────────────────

    def position(self, lines: tuple[str, ...], line: int, column: int) -> lsp.Position:
        """An LSP position (0-based, in the client's code units) of a 1-based line and column."""
        text = lines[line - 1] if 1 <= line <= len(lines) else ""
        return lsp.Position(
            max(line - 1, 0), self.workspace.position_codec.client_num_units(text[: max(column - 1, 0)])
        )

    def range(self, lines: tuple[str, ...], span: Span) -> lsp.Range:
        return lsp.Range(
            self.position(lines, span.line, span.column), self.position(lines, span.end_line, span.end_column)
        )

    def lines_of(self, file: str) -> tuple[str, ...]:
        """The lines of a file named the way spans name it: from an analysis that read it
        (an open document or one of its imports), else from disk (columns only)."""
        for analysis in self.analyses.values():
            modules = analysis.spec.modules.values() if analysis.spec is not None else ()
            for parsed in [analysis.parsed, *modules]:
                if parsed is not None and parsed.source.name == file:
                    return parsed.source.lines
        try:
            return tuple(Path(file).read_text(encoding="utf-8", errors="replace").splitlines())
        except OSError:
            return ()

    def location(self, span: Span) -> lsp.Location:
        return lsp.Location(self.uri_of(span.file), self.range(self.lines_of(span.file), span))

    def place(self, analysis: Analysis, position: lsp.Position) -> tuple[int, int]:
        """The 1-based line and column (in characters) of an LSP position."""
        lines = analysis.lines
        text = lines[position.line] if position.line < len(lines) else ""
        units, codec = 0, self.workspace.position_codec
        for i, ch in enumerate(text):
            if units >= position.character:
                return position.line + 1, i + 1
            units += codec.client_num_units(ch)
        return position.line + 1, len(text) + 1

    # ── diagnostics ──────────────────────────────────────────────────────────────────────

    def publish(self, analysis: Analysis) -> None:
        diagnostics = [self.diagnostic(analysis, p) for p in analysis.problems]
        self.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=analysis.uri, diagnostics=diagnostics, version=analysis.version)
        )

    def diagnostic(self, analysis: Analysis, problem: MslError) -> lsp.Diagnostic:
        span = problem.span if problem.span is not None and problem.span.file != ast.NO_SPAN.file else None
        message = problem.message + (f"\nhint: {problem.hint}" if problem.hint else "")
        severity = (
            lsp.DiagnosticSeverity.Error if problem.severity is Severity.ERROR else lsp.DiagnosticSeverity.Warning
        )
        if span is not None and span.file == analysis.name:
            return lsp.Diagnostic(self.range(analysis.lines, span), message, severity=severity, source="msl")
        # a problem in another file: shown on the import that leads there
        at = (_import_towards(analysis, span) if span else None) or Span.point(analysis.name)
        related = [lsp.DiagnosticRelatedInformation(self.location(span), problem.message)] if span else None
        return lsp.Diagnostic(
            self.range(analysis.lines, at), f"{span}: {message}" if span else message,
            severity=severity, source="msl", related_information=related,
        )


def _import_towards(analysis: Analysis, span: Span | None) -> Span | None:
    """The `import` of the document that names the file of ``span``, else its first."""
    if analysis.parsed is None:
        return None
    imports = analysis.parsed.module.imports
    if span is not None:
        target = Path(span.file).resolve()
        for imp in imports:
            if (analysis.path.parent / imp.path).resolve() == target:
                return imp.span
    return imports[0].span if imports else None


# ── What is at a position ────────────────────────────────────────────────────────────────


def _holds(span: Span, line: int, column: int) -> bool:
    return (span.line, span.column) <= (line, column) < (span.end_line, span.end_column)


def _chain(analysis: Analysis, line: int, column: int) -> list[ast.Node]:
    """The nodes of the document whose span holds the position, outermost first."""
    chain: list[ast.Node] = []
    if analysis.parsed is None:
        return chain
    nodes: list[ast.Node] = list(analysis.parsed.module.items)
    while True:
        inside = next((n for n in nodes if n.span.file == analysis.name and _holds(n.span, line, column)), None)
        if inside is None:
            return chain
        chain.append(inside)
        nodes = list(inside.children())


def _name_span(node: ast.Node) -> Span | None:
    """Where a declaration or a claim statement writes the name it binds."""
    for attr in ("name_span", "var_span"):
        span = getattr(node, attr, None)
        if span is not None and span != ast.NO_SPAN:
            return span
    return None


def _binding(spec: CheckedSpec | None, chain: list[ast.Node], name: str) -> ast.Node | Symbol | None:
    """What a name used inside ``chain`` refers to: a claim's `for`/`forall`/`let`, a
    comprehension's or a measure's variable, else a declaration of the spec."""
    for node in reversed(chain[:-1]):
        match node:
            case ast.Comprehension() if node.var == name:
                return node
            case ast.MeasureDecl() if name in node.params:
                return node
            case ast.Claim():
                for stmt in node.body:
                    if isinstance(stmt, ast.For | ast.Forall) and stmt.var == name:
                        return stmt
                    if isinstance(stmt, ast.Let) and stmt.name == name:
                        return stmt
    return spec.symbols.get(name) if spec is not None else None


def _member(chain: list[ast.Node], line: int, column: int) -> ast.Attribute | None:
    """The attribute whose member name (``logprob`` of ``lm.logprob``) is at the position."""
    node = chain[-1] if chain else None
    if (
        isinstance(node, ast.Attribute)
        and line == node.span.end_line
        and column >= node.span.end_column - len(node.name)
    ):
        return node
    return None


def _model_kind(spec: CheckedSpec | None, node: ast.Expr) -> str | None:
    if spec is None:
        return None
    return T.model_kind(spec.types.get(id(node), T.ANY))


def _builtin_doc(fn: Builtin) -> str:
    doc = inspect.cleandoc(fn.doc) if fn.doc else ""
    return f"```msl\n{fn.signature}\n```\n\n{doc}".rstrip()


def _declaration_doc(node: ast.Node, what: str, where: str | None = None) -> str:
    head = item_head(node) if isinstance(node, ast.ModelDecl | ast.Decl | ast.MeasureDecl) else statement(node)
    return (f"```msl\n{head}\n```\n\n{what}" + (f" — declared in {where}" if where else "")).rstrip()


def hover_text(analysis: Analysis, line: int, column: int) -> str | None:
    """Markdown for what is at the position: a built-in's signature and documentation,
    a name's declaration and type."""
    chain = _chain(analysis, line, column)
    if not chain:
        return None
    spec, node = analysis.spec, chain[-1]
    member = _member(chain, line, column)
    if member is not None:
        kind = _model_kind(spec, member.obj)
        fn = lookup(member.name, kind) if kind else None
        if fn is not None:
            return _builtin_doc(fn)
        if kind and member.name in T.SITE_POINTS:
            return (f"`{member.name}`: a family of sites of {T.with_article(kind)} model, "
                    f"one per block: `{member.name}[layer]`")
        return None
    for holder in reversed(chain):
        declared = _name_span(holder)
        if declared is not None and _holds(declared, line, column):
            return _declared_doc(spec, holder)
    if isinstance(node, ast.Name):
        target = _binding(spec, chain, node.id)
        type_ = spec.types.get(id(node)) if spec is not None else None
        if isinstance(target, Symbol):
            where = f"{target.file}:{target.node.name_span.line}" if target.file != analysis.name else None
            return _declaration_doc(target.node, f"`{node.id}`: {T.describe(target.type)}", where)
        if isinstance(target, ast.For | ast.Forall | ast.Let):
            return _declaration_doc(target, f"`{node.id}`: {T.describe(type_ or T.ANY)}")
        if isinstance(target, ast.MeasureDecl):
            return f"`{node.id}`: a parameter of measure `{target.name}`"
        if isinstance(target, ast.Comprehension):
            return f"`{node.id}`: {T.describe(type_ or T.ANY)}, each element in turn"
        fn = lookup(node.id)
        if fn is not None:
            return _builtin_doc(fn)
    return None


def _declared_doc(spec: CheckedSpec | None, node: ast.Node) -> str:
    """Hover on the name a declaration, a claim or a claim statement binds."""
    if isinstance(node, ast.Claim):
        text = next((s.text for s in node.body if isinstance(s, ast.Description)), "")
        return f"```msl\n{node.kind} {node.name}\n```\n\n{text}".rstrip()
    symbol = (
        spec.symbols.get(node.name)
        if spec is not None and isinstance(node, ast.ModelDecl | ast.Decl | ast.MeasureDecl)
        else None
    )
    if symbol is not None and symbol.node is node:
        return _declaration_doc(node, f"`{node.name}`: {T.describe(symbol.type)}")
    return _declaration_doc(node, "")


def definition(server: MslLanguageServer, analysis: Analysis, line: int, column: int) -> lsp.Location | None:
    """Where the name at the position is declared (across imports), or the file an
    `import`, a `preserves` or a `dataset(...)` names."""
    chain = _chain(analysis, line, column)
    if not chain:
        return None
    node = chain[-1]
    named: str | None = None
    if isinstance(node, ast.Import | ast.Preserves):
        named = node.path
    elif (isinstance(node, ast.String) and len(chain) > 1 and isinstance(chain[-2], ast.Call)
          and isinstance(chain[-2].func, ast.Name) and chain[-2].func.id == "dataset"):
        named = node.value
    if named is not None:
        file = analysis.path.parent / named
        if not file.is_file():
            return None
        return lsp.Location(from_fs_path(str(file.absolute())) or "", lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)))
    for holder in reversed(chain):  # on the name a declaration binds: that name itself
        declared = _name_span(holder)
        if declared is not None and _holds(declared, line, column):
            return server.location(declared)
    if not isinstance(node, ast.Name):
        return None
    target = _binding(analysis.spec, chain, node.id)
    if isinstance(target, Symbol):
        return server.location(target.node.name_span)
    if isinstance(target, ast.Node):
        return server.location(_name_span(target) or target.span)
    return None


# ── Completion ───────────────────────────────────────────────────────────────────────────

_IN_LEXICON = re.compile(r'\bbuiltin\(\s*"([^"\\]*)$')
_IN_DATASET = re.compile(r'\bdataset\(\s*"([^"\\]*)$')
_AFTER_DOT = re.compile(r"\b([A-Za-z_]\w*)\.(\w*)$")
_MODEL_KIND = re.compile(r"\bmodel\s+\w+\s*:\s*(\w*)$")
#: Strings (closed or not) and comments of a line, to tell whether the cursor is in one.
_STRING_OR_COMMENT = re.compile(r'"(?:[^"\\]|\\.)*("|$)|#.*$')


def _in_string_or_comment(before: str) -> bool:
    for m in _STRING_OR_COMMENT.finditer(before):
        if m.end() == len(before) and (m.group(0).startswith("#") or not m.group(1)):
            return True
    return False


def completions(server: MslLanguageServer, analysis: Analysis, position: lsp.Position) -> list[lsp.CompletionItem]:
    """What may be written at the position, by what the line says before it."""
    line, column = server.place(analysis, position)
    before = analysis.lines[line - 1][: column - 1] if line <= len(analysis.lines) else ""
    for pattern, listing in ((_IN_LEXICON, _lexicon_items), (_IN_DATASET, _data_file_items)):
        m = pattern.search(before)
        if m:
            start = server.position(analysis.lines, line, column - len(m.group(1)))
            edit_range = lsp.Range(start, position)
            return [
                lsp.CompletionItem(label, kind=kind, detail=detail, text_edit=lsp.TextEdit(edit_range, label))
                for label, kind, detail in listing(analysis)
            ]
    if _in_string_or_comment(before):
        return []
    known = analysis if analysis.parsed is not None else server.parsed.get(analysis.uri, analysis)
    m = _AFTER_DOT.search(before)
    if m:
        return _member_items(known, m.group(1), line)
    m = _MODEL_KIND.search(before)
    if m:
        return [
            lsp.CompletionItem(k, kind=lsp.CompletionItemKind.EnumMember, detail="model kind") for k in T.MODEL_KINDS
        ]
    items = [lsp.CompletionItem(k, kind=lsp.CompletionItemKind.Keyword) for k in sorted(keywords())]
    items += [
        lsp.CompletionItem(name, kind=lsp.CompletionItemKind.Function, detail=fn.signature,
                           documentation=_markdown(_builtin_doc(fn)))
        for name, fn in sorted(functions().items())
    ]
    if known.spec is not None:
        items += [
            lsp.CompletionItem(name, kind=_symbol_completion_kind(s.node), detail=T.describe(s.type))
            for name, s in sorted(known.spec.symbols.items())
        ]
    items += [lsp.CompletionItem(name, kind=lsp.CompletionItemKind.Variable, detail=detail)
              for name, detail in _locals(known, line)]
    return items


def _markdown(text: str) -> lsp.MarkupContent:
    return lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text)


def _symbol_completion_kind(node: ast.Node) -> lsp.CompletionItemKind:
    if isinstance(node, ast.ModelDecl):
        return lsp.CompletionItemKind.Class
    if isinstance(node, ast.MeasureDecl):
        return lsp.CompletionItemKind.Function
    return lsp.CompletionItemKind.Variable


def _member_items(analysis: Analysis, name: str, line: int) -> list[lsp.CompletionItem]:
    """After ``name.``: a model role's measurements (and sites), or the fields of the
    records a claim's variable runs over (``q.capital`` for a template's rows)."""
    symbol = analysis.spec.symbols.get(name) if analysis.spec is not None else None
    if symbol is None or not isinstance(symbol.node, ast.ModelDecl):
        return [lsp.CompletionItem(f, kind=lsp.CompletionItemKind.Field, detail="field")
                for f in _fields(analysis, name, line)]
    kind = symbol.node.kind
    items = [
        lsp.CompletionItem(
            m, kind=lsp.CompletionItemKind.Method, detail=fn.signature, documentation=_markdown(_builtin_doc(fn))
        )
        for m, fn in sorted(measurements(kind).items())
    ]
    if kind in T.MODEL_KINDS and kind != "network":
        items += [lsp.CompletionItem(s, kind=lsp.CompletionItemKind.Field, detail="site family: " + s + "[layer]")
                  for s in T.SITE_POINTS]
    return items


def _enclosing(analysis: Analysis, line: int) -> ast.Item | None:
    """The top-level item of the document that spans ``line``."""
    items = analysis.parsed.module.items if analysis.parsed is not None else ()
    return next((i for i in items if i.span.line <= line <= i.span.end_line), None)


def _fields(analysis: Analysis, name: str, line: int) -> list[str]:
    """The known fields of the records the claim variable ``name`` runs over."""
    claim = _enclosing(analysis, line)
    if not isinstance(claim, ast.Claim) or analysis.spec is None:
        return []
    for stmt in claim.body:
        if isinstance(stmt, ast.For) and stmt.var == name:
            elem = analysis.spec.types.get(id(stmt.iterable), T.ANY).elem
            return sorted(elem.fields) if elem.name == "record" and elem.fields else []
    return []


def _locals(analysis: Analysis, line: int) -> list[tuple[str, str]]:
    """The names a claim or measure binds, for a position inside it."""
    item = _enclosing(analysis, line)
    if isinstance(item, ast.MeasureDecl):
        return [(p, f"parameter of {item.name}") for p in item.params]
    if isinstance(item, ast.Claim):
        return [(s.var, statement(s)) if isinstance(s, ast.For | ast.Forall) else (s.name, statement(s))
                for s in item.body if isinstance(s, ast.For | ast.Forall | ast.Let)]
    return []


def _lexicon_items(analysis: Analysis) -> list[tuple[str, lsp.CompletionItemKind, str]]:
    from msl.lexicons import available, describe

    return [(name, lsp.CompletionItemKind.Value, describe(name).description) for name in available()]


def _data_file_items(analysis: Analysis) -> list[tuple[str, lsp.CompletionItemKind, str]]:
    """The JSONL and CSV files a `dataset(...)` of this spec may read (inside its folder)."""
    folder = analysis.path.parent
    found: list[tuple[str, lsp.CompletionItemKind, str]] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for file in sorted(files):
            relative = (Path(root) / file).relative_to(folder).as_posix()
            try:
                resolve_data_path(folder, relative)
            except ValueError:
                continue
            found.append((relative, lsp.CompletionItemKind.File, "dataset file"))
            if len(found) >= MAX_DATA_FILES:
                return found
    return found


# ── Outline and formatting ───────────────────────────────────────────────────────────────


def document_symbols(server: MslLanguageServer, analysis: Analysis) -> list[lsp.DocumentSymbol]:
    """The claims and declarations of the document (with each claim's `let`s)."""
    lines = analysis.lines
    symbols = []
    for item in analysis.parsed.module.items if analysis.parsed is not None else ():
        if isinstance(item, ast.Import):
            symbols.append(lsp.DocumentSymbol(item.path, lsp.SymbolKind.Module, server.range(lines, item.span),
                                              server.range(lines, item.span), detail="import"))
            continue
        match item:
            case ast.ModelDecl():
                kind, detail = lsp.SymbolKind.Class, f"model: {item.kind}"
            case ast.MeasureDecl():
                kind, detail = lsp.SymbolKind.Function, "measure"
            case ast.Claim():
                kind, detail = lsp.SymbolKind.Event, item.kind
            case _:
                kind, detail = lsp.SymbolKind.Variable, item.keyword
        children = [
            lsp.DocumentSymbol(s.name, lsp.SymbolKind.Variable, server.range(lines, s.span),
                               server.range(lines, s.name_span), detail="let")
            for s in (item.body if isinstance(item, ast.Claim) else ()) if isinstance(s, ast.Let)
        ]
        symbols.append(lsp.DocumentSymbol(
            item.name, kind, server.range(lines, item.span), server.range(lines, item.name_span),
            detail=detail, children=children or None,
        ))
    return symbols


def formatting(server: MslLanguageServer, uri: str) -> list[lsp.TextEdit] | None:
    """``msl fmt``'s layout of the document as one edit; nothing for a text that does not parse."""
    text, parsed = server.parse(uri)
    if not isinstance(parsed, Parsed):
        return None
    formatted = format_parsed(parsed)
    if formatted == text:
        return []
    lines = parsed.source.lines
    end = server.position(lines, len(lines), len(lines[-1]) + 1)
    return [lsp.TextEdit(lsp.Range(lsp.Position(0, 0), end), formatted)]


# ── The server ───────────────────────────────────────────────────────────────────────────


def build_server() -> MslLanguageServer:
    """A server with every feature registered (tests drive it over stdio, as editors do)."""
    server = MslLanguageServer()

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: MslLanguageServer, params: lsp.DidOpenTextDocumentParams) -> None:
        ls.refresh(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: MslLanguageServer, params: lsp.DidChangeTextDocumentParams) -> None:
        ls.refresh(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: MslLanguageServer, params: lsp.DidSaveTextDocumentParams) -> None:
        ls.analyses.pop(params.text_document.uri, None)  # files beside it may have changed too
        ls.refresh(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: MslLanguageServer, params: lsp.DidCloseTextDocumentParams) -> None:
        ls.forget(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def hover(ls: MslLanguageServer, params: lsp.HoverParams) -> lsp.Hover | None:
        analysis = ls.analyse(params.text_document.uri)
        text = hover_text(analysis, *ls.place(analysis, params.position))
        return lsp.Hover(_markdown(text)) if text else None

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=[".", '"']))
    def complete(ls: MslLanguageServer, params: lsp.CompletionParams) -> lsp.CompletionList:
        analysis = ls.analyse(params.text_document.uri)
        return lsp.CompletionList(is_incomplete=False, items=completions(ls, analysis, params.position))

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def goto_definition(ls: MslLanguageServer, params: lsp.DefinitionParams) -> lsp.Location | None:
        analysis = ls.analyse(params.text_document.uri)
        return definition(ls, analysis, *ls.place(analysis, params.position))

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def outline(ls: MslLanguageServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
        analysis = ls.analyse(params.text_document.uri)
        return document_symbols(ls, ls.parsed.get(analysis.uri, analysis))

    @server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
    def format_document(ls: MslLanguageServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
        return formatting(ls, params.text_document.uri)

    return server


def serve() -> None:
    """Run the language server over stdin and stdout until the editor ends it."""
    build_server().start_io()
