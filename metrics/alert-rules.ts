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
 * `base` as the rules file is to hold it: the URL parser's own form of it (`new URL(base).href`,
 * which drops tabs and newlines and percent-encodes what a path may not hold), with nothing left
 * that would break the file. The runbook URL is written inside a YAML double-quoted string that
 * Prometheus reads as a Go template: a `"` would end the string, a `\` start a YAML escape, and
 * `{{` or `}}` a template action, so that Prometheus refuses the file or links elsewhere. Throws
 * SEAWALL_METRICS_INVALID_OPTION for a base that is not an absolute URL, that has a #fragment, or
 * that keeps one of those after parsing.
 */
export function runbookBaseHref(base: string): string {
  let href: string;
  try {
    href = new URL(base).href;
  } catch {
    throw new MetricsError(
      'SEAWALL_METRICS_INVALID_OPTION',
      `runbook base '${base}' is not an absolute URL, e.g. https://wiki.example/seawall/operations.md`,
      {
        option: 'runbookBase',
        value: base,
      },
    );
  }
  if (href.includes('#')) {
    throw new MetricsError('SEAWALL_METRICS_INVALID_OPTION', 'the runbook base must not have a #fragment', {
      option: 'runbookBase',
      value: base,
    });
  }
  if (/\{\{|\}\}|["\\]/.test(href)) {
    throw new MetricsError(
      'SEAWALL_METRICS_INVALID_OPTION',
      `runbook base '${href}' has {{, }}, " or \\, which the rules file cannot hold; percent-encode them`,
      { option: 'runbookBase', value: base },
    );
  }
  return href;
}

/**
 * The rules text with every runbook URL under `base` (an absolute URL of operations.md, whose
 * anchors are the alert names in lower case), written as {@link runbookBaseHref} gives it. Throws
 * SEAWALL_METRICS_INVALID_OPTION for a base it refuses.
 */
export function alertRulesText(base: string = DEFAULT_RUNBOOK_BASE): string {
  const href = runbookBaseHref(base);
  const text = readFileSync(alertRulesPath(), 'utf8');
  return text.replaceAll(`runbook_url: "${DEFAULT_RUNBOOK_BASE}#`, `runbook_url: "${href}#`);
}
