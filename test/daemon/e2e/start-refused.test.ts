/**
 * A start that fails says only why: the lines a ready daemon prints (its metrics URL, its
 * sockets) are printed once it is ready, so a start refused for its policy, after the metrics
 * endpoint and store were opened, never advertised an address it then closed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from './run-cli.js';

test('a daemon refused at start for its policy printed no metrics address or socket', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-start-refused-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const policy = join(dir, 'policy.yaml');
  // Valid YAML and schema; refused by the daemon, which configures no hook of that name.
  writeFileSync(
    policy,
    [
      'version: 1',
      'name: moves',
      'hooks: [evacuate]',
      'rules:',
      '  - name: move',
      '    match: { kind: [sea] }',
      '    action:',
      '      { type: migrate, hook: evacuate, meanwhile: { abort: data }, onFailure: { type: kill } }',
      'default:',
      '  action: { type: inject, abort: data }',
      '',
    ].join('\n'),
  );
  const r = await runCli([
    'daemon',
    '--socket',
    join(dir, 'plugin.sock'),
    '--control-socket',
    join(dir, 'control.sock'),
    '--state-dir',
    join(dir, 'state'),
    '--metrics',
    '127.0.0.1:0',
    '--policy',
    policy,
    '--log',
    'stderr',
  ]);
  const out = `${r.stdout}${r.stderr}`;
  assert.equal(r.code, 1, out);
  assert.match(out, /evacuate/, 'the refusal names the hook');
  assert.doesNotMatch(out, /metrics: +http/);
  assert.doesNotMatch(out, /(plugin|control) socket:/);
});
