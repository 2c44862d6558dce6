// Starts `dnspolicy lsp` for .dsl files when the dnspolicy binary can be
// found (the `dnspolicy.server.path` setting, default: `dnspolicy` on PATH).
// Without it the extension still gives highlighting and snippets.
const { workspace, window } = require('vscode');
const { execFileSync } = require('child_process');

let client;

function available(command) {
  try {
    execFileSync(command, ['--version'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch (_) {
    return false;
  }
}

function activate(context) {
  const command = workspace.getConfiguration('dnspolicy').get('server.path') || 'dnspolicy';
  if (!available(command)) {
    window.setStatusBarMessage(`dnspolicy: '${command}' not found; live diagnostics are off`, 10000);
    return;
  }
  const { LanguageClient } = require('vscode-languageclient/node');
  client = new LanguageClient(
    'dnspolicy',
    'dnspolicy',
    { command, args: ['lsp'] },
    { documentSelector: [{ language: 'dnspolicy' }] }
  );
  client.start();
  context.subscriptions.push({ dispose: () => client && client.stop() });
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
