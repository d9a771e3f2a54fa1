"""The language server, driven the way an editor drives it: ``python -m msl lsp`` as a
subprocess, spoken to in JSON-RPC over its stdio by pygls's client.

What each answer must be comes from elsewhere: diagnostics from ``msl lint`` run on the
same text (same message, same line and column), hover text from the built-in registry
and the declaration's own text, completions from the registry and the lexicon list,
definitions from where the text declares the name, formatting from ``msl fmt``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("pygls")
from lsprotocol import types as lsp  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402
from pygls.uris import from_fs_path  # noqa: E402

from msl.builtins import all_builtins, functions, lookup, measurements  # noqa: E402
from msl.cli import cli  # noqa: E402
from msl.lexicons import available  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

COMMON = """msl 1.0

model lm: causal_lm = "smollm2-135m"

lexicon praise = ["good", "great"]
"""

MAIN = """msl 1.0

import "common.msl"

lexicon blame = ["bad", "awful"]
lexicon spare = ["fine"]
measure sentiment(t) = lm.logprob(t, " positive") - lm.logprob(t, " negative")
transform to_blame = swap(praise, blame)

verify praise_is_positive {
  description "Praise reads positive."
  for w in praise
  expect sentiment(w) > sentiment(to_blame(w))
}
"""

#: A type error: `label` is a classifier's measurement, and `lm` is a causal LM.
BROKEN = MAIN.replace("expect sentiment(w) > sentiment(to_blame(w))", 'expect lm.label(w) == "positive"')


def where(text: str, word: str, nth: int = 0) -> lsp.Position:
    """The 0-based position of the ``nth`` occurrence of ``word`` as a whole word."""
    m = list(re.finditer(rf"\b{re.escape(word)}\b", text))[nth]
    line = text.count("\n", 0, m.start())
    return lsp.Position(line, m.start() - (text.rfind("\n", 0, m.start()) + 1))


def end_of(text: str, fragment: str) -> lsp.Position:
    """The position just after the first occurrence of ``fragment``."""
    i = text.index(fragment) + len(fragment)
    return lsp.Position(text.count("\n", 0, i), i - (text.rfind("\n", 0, i) + 1))


class Session:
    """One server process and the diagnostics it has published."""

    def __init__(self, client: LanguageClient) -> None:
        self.client = client
        self.diagnostics: dict[str, lsp.PublishDiagnosticsParams] = {}
        self.versions: dict[str, int] = {}
        self.arrived = asyncio.Condition()

    async def wait_for(self, uri: str, version: int) -> list[lsp.Diagnostic]:
        def ready() -> bool:
            got = self.diagnostics.get(uri)
            return got is not None and got.version == version

        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(ready), timeout=30)
        return self.diagnostics[uri].diagnostics

    async def open(self, uri: str, text: str) -> list[lsp.Diagnostic]:
        self.versions[uri] = 1
        self.client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "msl", 1, text)))
        return await self.wait_for(uri, 1)

    async def change(self, uri: str, text: str) -> list[lsp.Diagnostic]:
        """Replace the document's text, as an editor does after a keystroke."""
        self.versions[uri] += 1
        self.client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(version=self.versions[uri], uri=uri),
            [lsp.TextDocumentContentChangeWholeDocument(text)],
        ))
        return await self.wait_for(uri, self.versions[uri])

    async def republished(self, uri: str) -> list[lsp.Diagnostic]:
        """The diagnostics published next for an unchanged document (one it imports changed)."""
        return await self.wait_for(uri, self.versions[uri])

    async def forget_diagnostics(self, uri: str) -> None:
        async with self.arrived:
            self.diagnostics.pop(uri, None)


def run_session(folder: Path, script: Callable[[Session], object]) -> None:
    """Start ``msl lsp`` in ``folder``, initialise it, run ``script``, shut it down."""

    async def main() -> None:
        client = LanguageClient("msl-test", "1")
        session = Session(client)

        @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        async def published(params: lsp.PublishDiagnosticsParams) -> None:
            async with session.arrived:
                session.diagnostics[params.uri] = params
                session.arrived.notify_all()

        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        await client.start_io(sys.executable, "-m", "msl", "lsp", cwd=str(folder), env=env)
        try:
            root = from_fs_path(str(folder))
            await asyncio.wait_for(client.initialize_async(lsp.InitializeParams(
                capabilities=lsp.ClientCapabilities(),
                root_uri=root,
                workspace_folders=[lsp.WorkspaceFolder(root, "specs")],
            )), timeout=60)
            client.initialized(lsp.InitializedParams())
            await script(session)  # type: ignore[misc]
            await asyncio.wait_for(client.shutdown_async(None), timeout=30)
        finally:
            client.exit(None)  # the server ends on `exit`, after a failed step too
            await asyncio.wait_for(client.stop(), timeout=30)

    asyncio.run(main())


def lint_output(path: Path) -> str:
    result = CliRunner().invoke(cli, ["lint", str(path)])
    return result.output


def cli_diagnostics(path: Path) -> set[tuple[int, int, str, str]]:
    """``msl lint``'s diagnostics of one file: line, column, severity, message."""
    found = re.findall(r"^.*?:(\d+):(\d+): (error|warning): (.*)$", lint_output(path), flags=re.M)
    return {(int(line), int(column), severity, message) for line, column, severity, message in found}


def lsp_diagnostics(diagnostics: list[lsp.Diagnostic]) -> set[tuple[int, int, str, str]]:
    """The server's diagnostics in the same terms (ASCII text: columns are characters)."""
    names = {lsp.DiagnosticSeverity.Error: "error", lsp.DiagnosticSeverity.Warning: "warning"}
    return {(d.range.start.line + 1, d.range.start.character + 1, names[d.severity], d.message.split("\nhint: ")[0])
            for d in diagnostics if d.severity is not None}


def test_a_session_gives_diagnostics_hover_completion_definitions_symbols_and_formatting(tmp_path: Path) -> None:
    (tmp_path / "common.msl").write_text(COMMON)
    main_path = tmp_path / "main.msl"
    main_path.write_text(MAIN)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "reviews.jsonl").write_text('{"text": "fine"}\n')
    (tmp_path / "notes.txt").write_text("not a dataset")
    uri = from_fs_path(str(main_path))
    common_uri = from_fs_path(str(tmp_path / "common.msl"))

    async def script(s: Session) -> None:
        client = s.client
        doc = lsp.TextDocumentIdentifier(uri)

        # a spec without errors: lint's warning (an unused declaration), as msl lint gives it
        diagnostics = await s.open(uri, MAIN)
        assert [d.severity for d in diagnostics] == [lsp.DiagnosticSeverity.Warning]
        assert lsp_diagnostics(diagnostics) == cli_diagnostics(main_path)
        assert diagnostics[0].range.start == where(MAIN, "spare")

        # a type error as the user types: msl lint's message, at msl lint's line and column
        diagnostics = await s.change(uri, BROKEN)
        errors = [d for d in diagnostics if d.severity == lsp.DiagnosticSeverity.Error]
        assert len(errors) == 1, diagnostics
        attribute = end_of(BROKEN, "expect ")
        assert errors[0].range == lsp.Range(attribute, end_of(BROKEN, "expect lm.label"))
        broken_path = tmp_path / "broken.msl"
        broken_path.write_text(BROKEN)
        cli_line = next(line for line in lint_output(broken_path).splitlines() if ": error: " in line)
        location, message = cli_line.split(": error: ")
        assert location.endswith(f"broken.msl:{attribute.line + 1}:{attribute.character + 1}")
        assert errors[0].message.split("\nhint: ")[0] == message
        assert lsp_diagnostics(diagnostics) == cli_diagnostics(broken_path)
        assert "is a measurement of classifier models" in message

        # fixed again: the error goes away
        assert not [d for d in await s.change(uri, MAIN) if d.severity == lsp.DiagnosticSeverity.Error]

        async def hover(position: lsp.Position) -> str:
            result = await client.text_document_hover_async(lsp.HoverParams(doc, position))
            assert result is not None
            return result.contents.value  # type: ignore[union-attr]

        # a built-in: its signature and documentation from the registry
        fn = lookup("logprob", "causal_lm")
        assert fn is not None
        text = await hover(where(MAIN, "logprob"))
        assert fn.signature in text and fn.summary.split(". ")[0] in " ".join(text.split())
        swap = lookup("swap")
        assert swap is not None and swap.signature in await hover(where(MAIN, "swap"))
        # a declared name: its declaration and type; an imported one says where it is from
        text = await hover(where(MAIN, "sentiment", 2))
        assert 'measure sentiment(t) = lm.logprob(t, " positive") - lm.logprob(t, " negative")' in text
        assert "a measure" in text
        text = await hover(where(MAIN, "praise", 1))
        assert 'lexicon praise = ["good", "great"]' in text and "a set of strings" in text and "common.msl" in text
        text = await hover(where(MAIN, "w", 2))  # the `w` of `sentiment(w)`
        assert "for w in praise" in text and "a string" in text

        # go to definition: across the import, and to a claim's variable
        found = await client.text_document_definition_async(lsp.DefinitionParams(doc, where(MAIN, "praise", 1)))
        assert isinstance(found, lsp.Location) and found.uri == common_uri
        start = where(COMMON, "praise")
        assert found.range == lsp.Range(start, lsp.Position(start.line, start.character + len("praise")))
        found = await client.text_document_definition_async(lsp.DefinitionParams(doc, where(MAIN, "w", 2)))
        assert isinstance(found, lsp.Location) and found.uri == uri and found.range.start == where(MAIN, "w", 0)
        found = await client.text_document_definition_async(lsp.DefinitionParams(doc, end_of(MAIN, 'import "co')))
        assert isinstance(found, lsp.Location) and found.uri == common_uri

        async def complete(text: str, fragment: str) -> set[str]:
            await s.change(uri, text)
            result = await client.text_document_completion_async(lsp.CompletionParams(doc, end_of(text, fragment)))
            assert isinstance(result, lsp.CompletionList)
            return {item.label for item in result.items}

        # a causal LM's measurements (and its sites) after `lm.`, not a classifier's
        typing = MAIN.replace("  for w in praise\n", "  for w in praise\n  expect lm.\n")
        labels = await complete(typing, "expect lm.")
        assert labels == set(measurements("causal_lm")) | {"resid_pre", "resid_post", "attn_out", "mlp_out"}
        assert "label" not in labels
        # a record's fields after `r.`, from the claim as it last parsed
        rows = MAIN + 'verify rows {\n  for r in template("{adj} day", adj: praise)\n  expect len(r.text) > 0\n}\n'
        await s.change(uri, rows)
        assert await complete(rows.replace("len(r.text) > 0", "r."), "expect r.") == {"adj", "text"}
        # inside builtin("…"): the lexicons; inside dataset("…"): the data files beside the spec
        typing = MAIN.replace('lexicon blame = ["bad", "awful"]', 'lexicon blame = builtin("')
        assert await complete(typing, 'builtin("') == set(available())
        typing = MAIN.replace('lexicon blame = ["bad", "awful"]', 'data rows = dataset("da')
        assert await complete(typing, 'dataset("da') == {"data/reviews.jsonl"}
        # elsewhere: keywords, built-ins, declared names (imported too) and the claim's own
        typing = MAIN.replace("  for w in praise\n", "  for w in praise\n  expect s\n")
        labels = await complete(typing, "expect s")
        assert {"verify", "expect", "tolerate", "import"} <= labels
        assert set(functions()) <= labels
        assert {"sentiment", "praise", "blame", "lm", "to_blame", "w"} <= labels

        # the outline: declarations and claims, each at its name
        await s.change(uri, MAIN)
        symbols = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(doc))
        assert [sym.name for sym in symbols] == [
            "common.msl",
            "blame",
            "spare",
            "sentiment",
            "to_blame",
            "praise_is_positive",
        ]
        claim = symbols[-1]
        assert isinstance(claim, lsp.DocumentSymbol) and claim.selection_range.start == where(
            MAIN, "praise_is_positive"
        )

        # formatting: msl fmt's text, as edits
        messy = MAIN.replace('lexicon blame = ["bad", "awful"]', 'lexicon   blame=["bad" ,"awful",]')
        await s.change(uri, messy)
        edits = await client.text_document_formatting_async(
            lsp.DocumentFormattingParams(doc, lsp.FormattingOptions(tab_size=2, insert_spaces=True))
        )
        assert edits
        messy_path = tmp_path / "messy.msl"
        messy_path.write_text(messy)
        assert CliRunner().invoke(cli, ["fmt", str(messy_path)]).exit_code == 0
        assert apply(messy, edits) == messy_path.read_text()

    run_session(tmp_path, script)


def apply(text: str, edits: list[lsp.TextEdit]) -> str:
    """The text after edits (ASCII text: positions are characters)."""
    lines = text.split("\n")

    def offset(p: lsp.Position) -> int:
        return sum(len(line) + 1 for line in lines[: p.line]) + p.character

    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[: offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end):]
    return text


# ── Highlighting for editors: the TextMate grammar and the VS Code extension ────────────

EDITORS = REPO / "editors"
TEXTMATE = EDITORS / "vscode" / "syntaxes" / "msl.tmLanguage.json"


def test_the_textmate_grammar_is_the_one_generated_from_the_language() -> None:
    spec = importlib.util.spec_from_file_location("msl_textmate", EDITORS / "textmate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert TEXTMATE.read_text(encoding="utf-8") == module.render(), "run `python editors/textmate.py`"


def test_every_keyword_of_the_lark_grammar_and_every_builtin_is_coloured() -> None:
    grammar = json.loads(TEXTMATE.read_text(encoding="utf-8"))
    repository = grammar["repository"]
    # the keywords as the Lark grammar spells them, read from its text
    lark = (REPO / "grammar" / "msl.lark").read_text(encoding="utf-8")
    words = set(re.findall(r'"([a-z_]+)"', lark))
    assert {"verify", "expect", "tolerate", "forall", "preserves"} <= words
    keyword_patterns = [re.compile(p["match"]) for p in repository["keyword"]["patterns"]]
    for word in sorted(words):
        line = f"  {word} = 1"  # `base = m` is where `base` is a keyword
        assert any((m := p.search(line)) and m.group(1) == word for p in keyword_patterns), word
    # a keyword written as a keyword argument is a name (keywords are soft)
    assert not any(p.search("f(data: x)") for p in keyword_patterns)
    builtin = re.compile(repository["builtin"]["match"])
    for name in functions():
        m = builtin.search(f"  {name}(x)")
        assert m and m.group(1) == name, name
    member = re.compile(repository["member"]["patterns"][0]["match"])
    for fn in all_builtins():
        if fn.receiver is not None:
            m = member.search(f"lm.{fn.name}(x)")
            assert m and m.group(2) == fn.name, fn.name


def test_the_vscode_extension_declares_the_language_grammar_and_server() -> None:
    folder = EDITORS / "vscode"
    package = json.loads((folder / "package.json").read_text(encoding="utf-8"))
    (language,) = package["contributes"]["languages"]
    assert language["extensions"] == [".msl"]
    json.loads((folder / language["configuration"]).read_text(encoding="utf-8"))  # plain JSON
    (grammar,) = package["contributes"]["grammars"]
    assert (folder / grammar["path"]).resolve() == TEXTMATE and grammar["scopeName"] == "source.msl"
    assert "vsce package" in package["scripts"]["package"] and "vscode-languageclient" in package["dependencies"]
    client = (folder / "extension.js").read_text(encoding="utf-8")
    assert '"lsp"' in client and "LanguageClient" in client


def test_imports_open_in_the_editor_are_checked_as_typed_and_their_errors_shown_on_the_import(tmp_path: Path) -> None:
    (tmp_path / "common.msl").write_text(COMMON)
    (tmp_path / "main.msl").write_text(MAIN)
    uri, common_uri = (from_fs_path(str(tmp_path / name)) for name in ("main.msl", "common.msl"))
    # a name after a character outside the BMP: LSP columns count UTF-16 code units
    emoji = MAIN + 'let smile = "😀" + nope\n'

    async def script(s: Session) -> None:
        await s.open(common_uri, COMMON)
        assert not [d for d in await s.open(uri, MAIN) if d.severity == lsp.DiagnosticSeverity.Error]

        # renaming `praise` in the (unsaved) imported file breaks its use in main.msl
        await s.forget_diagnostics(uri)
        await s.change(common_uri, COMMON.replace("praise", "praises"))
        errors = await s.republished(uri)
        assert [d.message.split("\n")[0] for d in errors] == ["unknown name `praise`"] * 2
        assert errors[0].range.start == where(MAIN, "praise")

        # an error inside the imported file: on the import in main.msl, with its own place
        broken = COMMON.replace('["good", "great"]', "3")
        await s.forget_diagnostics(uri)
        common_errors = await s.change(common_uri, broken)
        (error,) = [d for d in await s.republished(uri) if d.severity == lsp.DiagnosticSeverity.Error]
        (own,) = common_errors
        assert error.range.start == where(MAIN, "import")
        assert own.range.start == where(broken, "3")
        assert error.message.startswith(f"common.msl:{own.range.start.line + 1}:{own.range.start.character + 1}: ")
        assert error.related_information is not None
        assert error.related_information[0].location == lsp.Location(common_uri, own.range)
        assert own.message.startswith("`lexicon praise` must be a set of strings, not a number")

        await s.forget_diagnostics(uri)
        s.client.text_document_did_close(lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(common_uri)))
        # main.msl now reads common.msl from disk, where it is fine
        clean = await s.republished(uri)
        assert not [d for d in clean if d.severity == lsp.DiagnosticSeverity.Error]
        assert not s.diagnostics[common_uri].diagnostics

        (error,) = [d for d in await s.change(uri, emoji) if d.severity == lsp.DiagnosticSeverity.Error]
        line = emoji.split("\n")[error.range.start.line]
        units = len(line[: line.index("nope")].encode("utf-16-le")) // 2
        assert line.index("nope") == units - 1  # the emoji is one character, two UTF-16 units
        assert (error.range.start.character, error.range.end.character) == (units, units + 4)

        # texts that are not specs get msl lint's diagnostic, and no request fails on them
        for number, (text, expected) in enumerate([
            ("", "the file is empty"),
            ("verify x { expect 1 > 0 }\n", "a spec starts with its language version"),
            ('\x00 ☃ 😀\n\r\n"unterminated\n#', "unexpected character"),
            ('msl 1.0\nmodel lm: causal_lm = "m"\nverify a {\n  expect lm.\n', "unexpected end of file"),
        ]):
            broken_uri = f"untitled:Untitled-{number}"
            (problem,) = await s.open(broken_uri, text)
            assert problem.message.startswith(expected)
            doc = lsp.TextDocumentIdentifier(broken_uri)
            for position in (lsp.Position(0, 0), lsp.Position(3, 11), lsp.Position(9, 99)):
                await s.client.text_document_hover_async(lsp.HoverParams(doc, position))
                await s.client.text_document_definition_async(lsp.DefinitionParams(doc, position))
                await s.client.text_document_completion_async(lsp.CompletionParams(doc, position))
            await s.client.text_document_document_symbol_async(lsp.DocumentSymbolParams(doc))
            assert await s.client.text_document_formatting_async(
                lsp.DocumentFormattingParams(doc, lsp.FormattingOptions(tab_size=2, insert_spaces=True))) is None

    run_session(tmp_path, script)


def test_every_name_of_a_real_spec_hovers_and_leads_to_its_declaration() -> None:
    """Hover and definition on every word of a spec of specs/ (no request fails), and each
    declared name leads to the line that declares it (found in the text by a regex)."""
    path = REPO / "specs" / "verify_lm.msl"
    text = path.read_text(encoding="utf-8")
    uri = from_fs_path(str(path))
    declared = {m.group(2): text.count("\n", 0, m.start()) for m in re.finditer(
        r"^(model|lexicon|data|transform|vector|intervention|let|measure)\s+(\w+)", text, re.M)}
    assert len(declared) > 5

    async def script(s: Session) -> None:
        doc = lsp.TextDocumentIdentifier(uri)
        assert not [d for d in await s.open(uri, text) if d.severity == lsp.DiagnosticSeverity.Error]
        checked = 0
        for number, line in enumerate(text.split("\n")):
            if line.lstrip().startswith("#"):
                continue
            for m in re.finditer(r"\b[A-Za-z_]\w*\b", line.split("#")[0]):
                position = lsp.Position(number, m.start())
                hover = await s.client.text_document_hover_async(lsp.HoverParams(doc, position))
                found = await s.client.text_document_definition_async(lsp.DefinitionParams(doc, position))
                in_string = line[: m.start()].count('"') % 2 == 1
                a_tag = line.lstrip().startswith("tags ")  # `tags sentiment` names a tag, not the measure
                if m.group(0) in declared and not (in_string or a_tag) and line[m.start() - 1 : m.start()] != ".":
                    assert isinstance(found, lsp.Location), (number, m.group(0))
                    assert found.range.start.line == declared[m.group(0)], (number, m.group(0))
                    assert hover is not None and m.group(0) in hover.contents.value  # type: ignore[union-attr]
                    checked += 1
        assert checked > 20

    run_session(path.parent, script)


def test_the_editor_guide_names_real_settings_and_valid_configuration() -> None:
    guide = (REPO / "docs" / "editors.md").read_text(encoding="utf-8")
    settings = json.loads((EDITORS / "vscode" / "package.json").read_text(encoding="utf-8"))["contributes"][
        "configuration"
    ]
    for name in re.findall(r"`(msl\.server\.\w+)`", guide):
        assert name in settings["properties"], name
    (helix,) = re.findall(r"```toml\n(.*?)```", guide, flags=re.S)
    config = tomllib.loads(helix)
    assert config["language-server"]["msl"] == {"command": "msl", "args": ["lsp"]}
    assert "[docs/editors.md](docs/editors.md)" in (REPO / "README.md").read_text(encoding="utf-8")


def test_the_command_line_imports_pygls_only_for_msl_lsp() -> None:
    probe = (
        "import sys\nfrom msl.cli import cli\ntry:\n    cli(['--help'], prog_name='msl')\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pygls', 'lsprotocol')))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "lsp" in done.stdout


def test_without_pygls_msl_lsp_says_what_to_install() -> None:
    probe = "import sys\nsys.modules['pygls'] = None\nfrom msl.cli import main\nsys.argv = ['msl', 'lsp']\nmain()"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert "error: `msl lsp` needs pygls, which is not installed" in done.stderr
    assert "pip install 'msl[lsp]'" in done.stderr and "Traceback" not in done.stderr
