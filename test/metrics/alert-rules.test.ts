/**
 * `seawall alert-rules --runbook-base`: the base goes into a YAML double-quoted string that
 * Prometheus reads as a Go template. What would break either is refused with a MetricsError, what
 * the URL parser can put in its own form is written in that form, and the result is a rules file
 * promtool accepts with every runbook URL under the base.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { alertRulesText, isMetricsError } from '../../metrics/index.js';
import { promtool, promtoolOrSkip } from './promtool.js';

function runbookUrls(text: string): string[] {
  return [...text.matchAll(/^\s+runbook_url: (.*)$/gm)].map((m) => m[1]!);
}

test('a base that would end the string, start a YAML escape or a template action is refused', () => {
  for (const base of [
    'https://wiki.example/ops.md?x={{x}}',
    'https://wiki.example/ops.md?x=}}',
    'urn:seawall:"ops',
    'urn:seawall:{{ .x }}',
    'https://wiki.example/ops.md?a\\b',
    'https://wiki.example/ops.md#',
    'wiki/ops.md',
  ]) {
    assert.throws(
      () => alertRulesText(base),
      (err) => isMetricsError(err) && err.code === 'SEAWALL_METRICS_INVALID_OPTION',
      JSON.stringify(base),
    );
  }
});

test('a base is written as the URL parser gives it, and promtool accepts the rules', async (t) => {
  const cases: [string, string][] = [
    ['https://wiki.example/seawall/operations.md', 'https://wiki.example/seawall/operations.md'],
    ['https://wiki.example/{{x}}/"ops".md', 'https://wiki.example/%7B%7Bx%7D%7D/%22ops%22.md'],
    ['https://wiki.example/ops\n.md', 'https://wiki.example/ops.md'],
    ['HTTPS://Wiki.Example', 'https://wiki.example/'],
  ];
  const dir = mkdtempSync(join(tmpdir(), 'seawall-alert-rules-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [base, href] of cases) {
    const text = alertRulesText(base);
    const urls = runbookUrls(text);
    assert.ok(urls.length >= 10, `${urls.length} runbook URLs`);
    for (const u of urls) assert.match(u, /^"[^"]*#seawall[a-z]+"$/, JSON.stringify(base));
    for (const u of urls) assert.ok(u.startsWith(`"${href}#`), `${JSON.stringify(base)}: ${u}`);
    if (!promtoolOrSkip(t)) continue;
    const file = join(dir, 'rules.yaml');
    writeFileSync(file, text);
    const res = await promtool(['check', 'rules', file]);
    assert.equal(res.code, 0, `${JSON.stringify(base)}: ${res.stdout}${res.stderr}`);
  }
});
