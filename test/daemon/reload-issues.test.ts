/**
 * A refused reload's answer is made on the event loop that answers vCPUs, so it is bounded: a
 * policy with hundreds of errors is answered with the first MAX_REPORTED_ISSUES and a line saying
 * how many more there are (`seawall policy check` lists every one). Before the bound a 3.8 MB
 * policy of 50,000 bad rules answered 50,000 errors, 7 MB.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { controlRequest } from '../../control/index.js';
import { MAX_REPORTED_ISSUES } from '../../daemon/policy-worker.js';
import { parsePolicy } from '../../policies/index.js';
import { removeDir, startDaemon } from '../helpers/daemon.js';

const VALID = ['version: 1', 'name: valid', 'rules: []', 'default:', '  action: { type: none }', ''].join(
  '\n',
);

/** `n` rules, each matching a kind that does not exist: an error apiece. */
function badRules(n: number): string {
  const lines = ['version: 1', 'name: broken', 'rules:'];
  for (let i = 0; i < n; i++)
    lines.push(`  - { name: r${i}, match: { kind: bogus${i} }, action: { type: none } }`);
  lines.push('default:', '  action: { type: none }', '');
  return lines.join('\n');
}

test('a refused reload answers its first errors and how many more, not every one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-reload-issues-'));
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, VALID);
  const d = await startDaemon({ args: ['--policy', file] });
  t.after(async () => {
    await d.kill();
    removeDir(d.dir);
    removeDir(dir);
  });
  const before = await controlRequest(d.controlSocket, 'status');
  const text = badRules(3 * MAX_REPORTED_ISSUES);
  const parsed = parsePolicy(text, file);
  const all = parsed.ok ? 0 : parsed.issues.length;
  assert.ok(all > MAX_REPORTED_ISSUES, `the file has ${all} errors`);
  writeFileSync(file, text);
  const r = await controlRequest(d.controlSocket, 'reload');
  assert.equal(r.ok, false);
  assert.equal(r.version, before.policy.version, 'the policy in force is kept');
  assert.equal(r.issues.length, MAX_REPORTED_ISSUES + 1);
  assert.match(r.issues[0] ?? '', /policy\.yaml:4: rules\[0\]\.match\.kind: /);
  assert.equal(
    r.issues.at(-1),
    `… and ${all - MAX_REPORTED_ISSUES} more errors: seawall policy check ${file} lists every one`,
  );
});
