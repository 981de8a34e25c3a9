/**
 * README.md's example configuration is one the daemon takes, and every example policy under
 * policies/examples/ checks against it — the migrate hooks they name are ones it configures — so
 * an operator who starts from the README can load any of them.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { main } from '../../cli/cli.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const EXAMPLES = join(ROOT, 'policies/examples');

test('every example policy checks against the README’s example configuration', async (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const config = /```yaml\n(socket:[\s\S]*?)```/.exec(readme)?.[1] ?? '';
  assert.ok(config.includes('hooks:'), 'the README’s configuration, with its hooks');
  const dir = mkdtempSync(join(tmpdir(), 'seawall-readme-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'seawall.yaml');
  writeFileSync(file, config, { mode: 0o600 });
  const policies = readdirSync(EXAMPLES)
    .filter((f) => f.endsWith('.yaml') && !f.endsWith('.test.yaml'))
    .map((f) => join(EXAMPLES, f));
  assert.ok(policies.length >= 4, 'the examples');
  let out = '';
  let err = '';
  const io = { out: (s: string) => (out += `${s}\n`), err: (s: string) => (err += `${s}\n`) };
  const status = await main(['policy', 'check', '--config', file, ...policies], io, { env: {} });
  assert.equal(status, 0, err);
  assert.equal(out.match(/: ok: policy /g)?.length, policies.length, out);
});
