/**
 * The shipped alert rules (metrics/rules/seawall-alerts.yaml) with their runbook links made
 * absolute for the operator's site. The file links every alert to the documentation install.sh
 * puts on the host (`file:///usr/share/doc/seawall/operations.md#<alert>`); Alertmanager and its
 * receivers need a URL their readers can open, so `seawall alert-rules --runbook-base URL` writes
 * the same rules with that base instead.
 */
import { readFileSync } from 'node:fs';
import { MetricsError } from './errors.js';

/** The runbook base written in the shipped rules file. */
export const DEFAULT_RUNBOOK_BASE = 'file:///usr/share/doc/seawall/operations.md';

/** The rules file: beside this module in the source tree, two levels up from dist/metrics/. */
export function alertRulesPath(): string {
  for (const rel of ['./rules/seawall-alerts.yaml', '../../metrics/rules/seawall-alerts.yaml']) {
    const url = new URL(rel, import.meta.url);
    try {
      readFileSync(url, { flag: 'r' });
      return url.pathname;
    } catch {
      // try the next candidate
    }
  }
  throw new MetricsError(
    'SEAWALL_METRICS_INVALID_OPTION',
    'metrics/rules/seawall-alerts.yaml is not installed',
  );
}

/**
 * The rules text with every runbook URL under `base` (an absolute URL of operations.md, whose
 * anchors are the alert names in lower case). Throws SEAWALL_METRICS_INVALID_OPTION for a base
 * that is not an absolute URL.
 */
export function alertRulesText(base: string = DEFAULT_RUNBOOK_BASE): string {
  let parsed: URL;
  try {
    parsed = new URL(base);
  } catch {
    throw new MetricsError(
      'SEAWALL_METRICS_INVALID_OPTION',
      `runbook base '${base}' is not an absolute URL`,
      {
        option: 'runbookBase',
        value: base,
      },
    );
  }
  if (parsed.hash !== '') {
    throw new MetricsError('SEAWALL_METRICS_INVALID_OPTION', 'the runbook base must not have a #fragment', {
      option: 'runbookBase',
      value: base,
    });
  }
  const text = readFileSync(alertRulesPath(), 'utf8');
  return text.replaceAll(`runbook_url: "${DEFAULT_RUNBOOK_BASE}#`, `runbook_url: "${base}#`);
}
