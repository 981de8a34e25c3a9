/**
 * Every Grafana panel query evaluated by promtool against a scripted fleet, with the values an
 * operator must see. The fleet has VMs whose series appear in the middle of the window — a VM's
 * first error creates its series at 1 — which bare increase() cannot see: the "Uncontainable
 * errors (24h)" stat showed 0 while 4 happened. Each query's expected samples are written here by
 * hand from the series below.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promtool, promtoolOrSkip } from './promtool.js';

const DASHBOARD = new URL('../../metrics/dashboards/seawall.json', import.meta.url).pathname;
const L = 'job="seawall",instance="hv1"';
const L2 = 'job="seawall",instance="hv2"';

/** One-minute samples from 0m to 121m, in promtool's expanding notation; the queries run at 120m. */
const FLEET: [string, string][] = [
  // vm-a: an error at 61m, so its series has existed for the whole short window.
  [`seawall_memory_errors_total{${L},vm="vm-a",kind="sea",severity="uer"}`, '0x60 1x60'],
  // vm-b: four uncontainable errors, its series appearing at 90m at 1.
  [`seawall_memory_errors_total{${L},vm="vm-b",kind="sea",severity="uc"}`, '_x90 1 2 3 4x28'],
  // vm-c: a series born two minutes before the query.
  [`seawall_memory_errors_total{${L},vm="vm-c",kind="sigbus",severity="unknown"}`, '_x118 1 2 2 2'],
  // hv2 restarts at 117m: vm-r's one uncontainable error (at 10m) is followed by another at 118m,
  // which brings its series back at 1, the value it had. Nothing before or in the window shows
  // the step; the start time's change in the window says the whole value is new.
  [`seawall_memory_errors_total{${L2},vm="vm-r",kind="sea",severity="uc"}`, '_x10 1x105 stale _ 1x3'],
  [`seawall_process_start_time_seconds{${L2}}`, '0x115 stale _ 7020x3'],
  [`seawall_poisoned_pages{${L},vm="vm-a"}`, '1x121'],
  [`seawall_poisoned_pages{${L},vm="vm-b"}`, '_x90 2x31'],
  [`seawall_metrics_vms_tracked{${L}}`, '3x121'],
  [`seawall_actions_total{${L},action="inject",rule="default"}`, '0+1x121'],
  [`seawall_actions_total{${L},action="kill",rule="uc-kill"}`, '_x117 1 2 3 4 4'],
  [`seawall_injection_downgrades_total{${L},from="iabt_esr",to="dabt",rule="r1"}`, '_x119 1 1 1'],
  [`seawall_verdict_latency_seconds_bucket{${L},le="0.0001"}`, '0+10x121'],
  [`seawall_verdict_latency_seconds_bucket{${L},le="+Inf"}`, '0+10x121'],
  [`seawall_migrations_total{${L},outcome="accepted"}`, '0x121'],
  [`seawall_migrations_total{${L},outcome="refused"}`, '_x117 1x4'],
  [`seawall_kills_total{${L},outcome="exited"}`, '0x121'],
  [`seawall_kills_total{${L},outcome="sigkilled"}`, '0x115 1x5'],
  [`seawall_plugin_sessions{${L}}`, '2x121'],
  [`seawall_plugin_sessions_ended_total{${L},outcome="closed"}`, '0x121'],
  [`seawall_plugin_sessions_ended_total{${L},outcome="protocol_error"}`, '0x116 1x4'],
  [`seawall_protocol_errors_total{${L},reason="BAD_MAGIC"}`, '_x118 1x2'],
  [`seawall_fallback_events_reported_total{${L},vm="vm-a"}`, '0x121'],
  [`seawall_fallback_events_reported_total{${L},vm="vm-b"}`, '_x119 3x2'],
  [`seawall_policy_last_reload_successful{${L}}`, '1x121'],
  [`seawall_policy_reloads_total{${L},result="success"}`, '1x121'],
  [`seawall_policy_reloads_total{${L},result="failure"}`, '0x121'],
  [`seawall_store_errors_total{${L},op="append"}`, '_x118 2x2'],
  [`seawall_metrics_vm_series_evicted_total{${L}}`, '0x121'],
  [`seawall_metrics_label_overflow_total{${L},label="rule"}`, '0x121'],
  [`seawall_process_resident_memory_bytes{${L}}`, '50000000x121'],
  [`seawall_nodejs_heap_size_used_bytes{${L}}`, '20000000x121'],
  [`seawall_nodejs_eventloop_lag_p99_seconds{${L}}`, '0.01x121'],
  // A storm at 117m: the backlog reaches the bound, verdicts wait 0.3 s a minute for two minutes.
  [`seawall_store_pending_events{${L}}`, '0x116 60000 100000 100000 40000 0'],
  [`seawall_store_backpressure_seconds_total{${L}}`, '0x116 0.3 0.6 0.9 0.9 0.9'],
];

/** What each panel must show at 120m, by panel title, in the order of its queries. */
const EXPECTED: Record<string, [string, number][][]> = {
  'Memory errors (last 24h)': [[['{}', 8]]],
  'Uncontainable errors (last 24h)': [[['{}', 5]]],
  'Poisoned pages': [[['{}', 3]]],
  'VMs with series': [[['{}', 3]]],
  'Memory errors by kind and severity': [
    [
      ['{kind="sea",severity="uer"}', 0],
      ['{kind="sea",severity="uc"}', 1],
      ['{kind="sigbus",severity="unknown"}', 2],
    ],
  ],
  'Memory errors by VM (top 10)': [
    [
      ['{vm="vm-a"}', 1],
      ['{vm="vm-b"}', 4],
      ['{vm="vm-c"}', 2],
      ['{vm="vm-r"}', 1],
    ],
  ],
  'Actions by rule': [
    [
      ['{action="inject",rule="default"}', 5],
      ['{action="kill",rule="uc-kill"}', 4],
    ],
  ],
  'Injection downgrades': [[['{rule="r1",from="iabt_esr",to="dabt"}', 1]]],
  'Verdict latency': [[['{}', 0.00005]], [['{}', 9.900000000000001e-5]], [['{}', 0.0000999]]],
  'Migrations and kills': [
    [
      ['{outcome="accepted"}', 0],
      ['{outcome="refused"}', 1],
    ],
    [
      ['{outcome="exited"}', 0],
      ['{outcome="sigkilled"}', 1],
    ],
  ],
  'Plugin sessions': [[['{}', 2]]],
  'Sessions ended, protocol errors, fallback reports': [
    [
      ['{outcome="closed"}', 0],
      ['{outcome="protocol_error"}', 1],
    ],
    [['{reason="BAD_MAGIC"}', 1]],
    [['{}', 3]],
  ],
  Policy: [
    [[`seawall_policy_last_reload_successful{${L}}`, 1]],
    [
      ['{result="success"}', 0],
      ['{result="failure"}', 0],
    ],
  ],
  'Store errors and cardinality bounds': [[['{op="append"}', 2]], [['{}', 0]], [['{label="rule"}', 0]]],
  'Daemon process': [
    [[`seawall_process_resident_memory_bytes{${L}}`, 50000000]],
    [[`seawall_nodejs_heap_size_used_bytes{${L}}`, 20000000]],
  ],
  'Event loop lag p99': [[[`seawall_nodejs_eventloop_lag_p99_seconds{${L}}`, 0.01]]],
  // 0.9 s waited in the 5-minute window: 0.3 % of the time.
  'Event store backlog': [[['{}', 40000]], [['{}', 0.003]]],
};

interface Panel {
  title: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

function panelQueries(): { title: string; exprs: string[] }[] {
  const out: { title: string; exprs: string[] }[] = [];
  const walk = (ps: Panel[]) => {
    for (const p of ps) {
      const exprs = (p.targets ?? []).flatMap((t) => (t.expr ? [t.expr] : []));
      if (exprs.length > 0) out.push({ title: p.title, exprs });
      walk(p.panels ?? []);
    }
  };
  walk((JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] }).panels);
  return out.map(({ title, exprs }) => ({
    title,
    exprs: exprs.map((e) =>
      e
        .replaceAll('$__rate_interval', '5m')
        .replaceAll('$__range', '1d')
        .replaceAll('$job', 'seawall')
        .replaceAll('$instance', '.*'),
    ),
  }));
}

test('every dashboard panel shows the scripted fleet’s true numbers, new series included', async (t) => {
  if (!promtoolOrSkip(t)) return;
  const panels = panelQueries();
  assert.deepEqual(
    panels.map((p) => p.title).sort(),
    Object.keys(EXPECTED).sort(),
    'every panel with a query has its expected values here',
  );
  const cases: string[] = [];
  for (const { title, exprs } of panels) {
    const expected = EXPECTED[title] as [string, number][][];
    assert.equal(exprs.length, expected.length, `${title}: one expectation per query`);
    exprs.forEach((expr, i) => {
      const samples = (expected[i] as [string, number][])
        .map(([labels, value]) => `          - labels: '${labels}'\n            value: ${value}`)
        .join('\n');
      cases.push(
        `      - expr: ${JSON.stringify(expr)}\n        eval_time: 120m\n        exp_samples:\n${samples}`,
      );
    });
  }
  const dir = mkdtempSync(join(tmpdir(), 'seawall-dashboard-eval-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'empty.rules.yaml'), 'groups: []\n');
  const series = FLEET.map(([s, v]) => `      - series: '${s}'\n        values: '${v}'`).join('\n');
  writeFileSync(
    join(dir, 'dashboard.test.yaml'),
    `rule_files: [empty.rules.yaml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n${series}\n    promql_expr_test:\n${cases.join('\n')}\n`,
  );
  const r = await promtool(['test', 'rules', 'dashboard.test.yaml'], { cwd: dir });
  assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
});
