import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MetricsServer, SeawallMetrics } from '../../metrics/index.js';
import { promtool, promtoolOrSkip } from './promtool.js';

const rulesDir = join(dirname(fileURLToPath(import.meta.url)), '../../metrics/rules');
const rulesFile = join(rulesDir, 'seawall-alerts.yaml');
const rulesTestFile = join(rulesDir, 'seawall-alerts.test.yaml');
const dashboardFile = join(rulesDir, '../dashboards/seawall.json');

/** Every `expr` in the Grafana dashboard, with its template variables given concrete values. */
function dashboardQueries(): string[] {
  const exprs: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node !== null && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) {
        if (k === 'expr' && typeof v === 'string') exprs.push(v);
        else walk(v);
      }
    }
  };
  walk(JSON.parse(readFileSync(dashboardFile, 'utf8')));
  return exprs.map((e) =>
    e
      .replaceAll('$__rate_interval', '5m')
      .replaceAll('$__range', '1d')
      .replaceAll('$job', 'seawall')
      .replaceAll('$instance', '.*'),
  );
}

function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () =>
        res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`)),
      );
    })
      .on('error', reject)
      .end();
  });
}

describe('promtool', () => {
  it('check metrics reports nothing on a real scrape with every family populated', async (t) => {
    if (!promtoolOrSkip(t)) return;
    const m = new SeawallMetrics({ version: '0.1.0', maxLabelValues: 1 });
    m.memoryError('vm-a', 'sea', 'uer');
    m.memoryError('vm "b"', 'sigbus', 'unknown');
    m.action('inject', 'default');
    m.action('kill', 'overflowing-rule');
    m.downgrade('iabt_esr', 'dabt', 'default');
    m.observeVerdictLatency(4e-5);
    m.setPoisonedPages('vm-a', 1);
    m.sessionOpened();
    m.sessionOpened();
    m.sessionClosed('protocol_error');
    m.protocolError('frame_too_large');
    m.fallbackReported('vm-a', 2, 'replay');
    m.fallbackReported('vm-a', 1, 'applied');
    m.migration('refused');
    m.kill('failed');
    m.policyReload(true, '2025-01-01', 'c'.repeat(64));
    m.storeError('append');
    m.watchStore(() => ({
      pendingEvents: 42,
      heldEvents: 7,
      backpressureMs: 12.5,
      heldUpdates: 3,
      lostEvents: 5,
      lostUpdates: 1,
      sessionHolds: 2,
    }));
    m.sinkFailure('hooks');
    const server = new MetricsServer(m, { port: 0 });
    const { port } = await server.listen();
    let text: string;
    try {
      text = await scrape(port);
    } finally {
      await server.close();
    }
    const res = await promtool(['check', 'metrics'], { stdin: text });
    assert.equal(res.code, 0, `promtool check metrics failed:\n${res.stdout}${res.stderr}`);
    assert.equal(res.stdout + res.stderr, '', 'promtool check metrics reported problems');
  });

  it('check rules accepts the shipped alert rules', async (t) => {
    if (!promtoolOrSkip(t)) return;
    const res = await promtool(['check', 'rules', rulesFile]);
    assert.equal(res.code, 0, `${res.stdout}${res.stderr}`);
    assert.match(res.stdout, /SUCCESS/);
  });

  it('test rules passes the shipped unit tests', async (t) => {
    if (!promtoolOrSkip(t)) return;
    const res = await promtool(['test', 'rules', rulesTestFile], { cwd: rulesDir });
    assert.equal(res.code, 0, `${res.stdout}${res.stderr}`);
    assert.match(res.stdout, /SUCCESS/);
  });

  it('the rule tests expect every alert to fire at least once and to stay silent at least once', () => {
    const alerts = [...readFileSync(rulesFile, 'utf8').matchAll(/^\s*- alert: (\w+)$/gm)].map((m) => m[1]!);
    assert.ok(alerts.length >= 10, `found ${alerts.length} alerts`);
    const tests = readFileSync(rulesTestFile, 'utf8');
    const cases = [...tests.matchAll(/alertname: (\w+)\n\s+exp_alerts:( \[\])?/g)];
    for (const alert of alerts) {
      const mine = cases.filter((c) => c[1] === alert);
      assert.ok(
        mine.some((c) => c[2] === undefined),
        `${alert} never expected to fire`,
      );
      assert.ok(
        mine.some((c) => c[2] !== undefined),
        `${alert} never expected to stay silent`,
      );
    }
  });

  it('every Grafana dashboard query parses as PromQL', async (t) => {
    if (!promtoolOrSkip(t)) return;
    const exprs = dashboardQueries();
    assert.ok(exprs.length >= 10, `found ${exprs.length} queries`);
    const dir = mkdtempSync(join(tmpdir(), 'seawall-dashboard-'));
    try {
      // promtool parses PromQL only inside rule files: wrap each query as a recording rule.
      const rules = exprs.map(
        (e, i) => `      - record: seawall:dashboard_query_${i}\n        expr: ${JSON.stringify(e)}`,
      );
      const file = join(dir, 'dashboard-queries.yaml');
      writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`);
      const res = await promtool(['check', 'rules', file]);
      assert.equal(res.code, 0, `${res.stdout}${res.stderr}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
