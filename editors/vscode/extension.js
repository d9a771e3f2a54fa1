// The VS Code client of MSL: starts `msl lsp` (the language server of the Python package)
// for .msl files and restarts it on request or when its settings change. Everything the
// editor shows — diagnostics, hover, completion, definitions, outline, formatting — comes
// from the server; highlighting comes from syntaxes/msl.tmLanguage.json.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

/** @type {LanguageClient | undefined} */
let client;

function createClient() {
  const config = vscode.workspace.getConfiguration("msl");
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const command = config.get("server.command", "msl").replace("${workspaceFolder}", folder ?? ".");
  const serverOptions = {
    command,
    args: config.get("server.args", ["lsp"]),
    transport: TransportKind.stdio,
    // the server names files relative to its working directory, as `msl lint` does
    options: folder ? { cwd: folder } : {},
  };
  const clientOptions = {
    documentSelector: [
      { scheme: "file", language: "msl" },
      { scheme: "untitled", language: "msl" },
    ],
  };
  return new LanguageClient("msl", "MSL language server", serverOptions, clientOptions);
}

async function restart() {
  if (client) {
    await client.stop();
  }
  client = createClient();
  await client.start();
}

/** @param {vscode.ExtensionContext} context */
async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand("msl.restartServer", restart),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration("msl.server")) {
        return restart();
      }
      return undefined;
    }),
  );
  await restart();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
