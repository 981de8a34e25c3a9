/**
 * Prometheus as a sink: every event, action, downgrade, session and protocol error counted. Each
 * record is counted on its own: a record the metrics layer refuses is reported and skipped, and
 * the rest of the batch — other VMs' events — is still counted.
 */

import { type EventRecord, poisonsPage, type Sink } from '../../events/index.js';
import type { SeawallMetrics } from '../../metrics/index.js';
import { PoisonedPageCounts } from './poisoned-page-counts.js';
import { vmLabel } from './vm-label.js';

const NS_PER_S = 1e9;

/**
 * Refusals that SeawallPluginProtocolErrors reports as well: a HELLO in a protocol version this
 * daemon does not speak (REJECT VERSION, a plugin of another release), and a peer that `allow`
 * does not admit (a process reaching the plugin socket that should not, or a VMM whose user the
 * config left out). The others (VM id in use, too many sessions, shutting down) are the daemon's
 * answer to a well-formed request from an admitted plugin, counted only as sessions ended `rejected`.
 */
const VIOLATING_REJECTIONS: ReadonlySet<string> = new Set(['version', 'unauthorized']);

/** A session's VM is one object for all its events: its label is made once, not per event. */
const labels = new WeakMap<EventRecord['event']['vm'], string>();
function labelOf(vm: EventRecord['event']['vm']): string {
  let label = labels.get(vm);
  if (label === undefined) {
    label = vmLabel(vm.id);
    labels.set(vm, label);
  }
  return label;
}

function count(m: SeawallMetrics, pages: PoisonedPageCounts, r: EventRecord): void {
  const e = r.event;
  const vm = labelOf(e.vm);
  m.memoryError(vm, e.kind, e.severity);
  if (poisonsPage(r)) {
    const n = pages.add(e.vm.id, e.gpa as bigint);
    if (n !== null) m.setPoisonedPages(vm, n);
  }
  if (r.kernelMismatch) for (const field of r.kernelMismatch) m.kernelMismatch(field);
  if (r.replay) {
    m.fallbackReported(vm, 1);
    return;
  }
  const d = r.decision;
  if (!d) return;
  // Before the counts by rule: a rule name the metrics layer refuses must not cost the latency.
  m.observeVerdictLatency(Number(r.latencyNs) / NS_PER_S);
  m.action(d.action, d.rule);
  if (d.downgrade) m.downgrade(d.downgrade.from, d.downgrade.to, d.rule);
  if (r.verdictDowngrade) m.downgrade(r.verdictDowngrade.from, r.verdictDowngrade.to, d.rule);
}

/**
 * `onRecordError` hears of a record that could not be counted (the bus's sink-failure report);
 * `pages` holds each VM's distinct poisoned pages (seeded from the store by the caller).
 */
export function metricsSink(
  m: SeawallMetrics,
  onRecordError: (err: unknown) => void = () => {},
  pages: PoisonedPageCounts = new PoisonedPageCounts(),
): Sink {
  return {
    name: 'metrics',
    afterReply(batch) {
      for (const r of batch) {
        if (r.duplicate) continue;
        try {
          count(m, pages, r);
        } catch (err) {
          onRecordError(err);
        }
      }
    },
    sessionOpened(s) {
      m.sessionOpened();
      const label = labelOf(s.vm);
      m.vmConnected(label);
      // A VM that returns gets its gauge back at once, not at its next error; one forgotten for
      // the bound on VMs, once its pages are read back from the store.
      pages.connected(s.vm.id, (n) => m.setPoisonedPages(label, n));
      const n = pages.count(s.vm.id);
      if (n > 0) m.setPoisonedPages(label, n);
    },
    sessionClosed(s, outcome) {
      pages.departed(s.vm.id);
      m.sessionClosed(outcome === 'protocol_error' ? 'protocol_error' : 'closed');
      m.vmDeparted(labelOf(s.vm));
    },
    sessionRejected(reason) {
      m.sessionRejected();
      if (VIOLATING_REJECTIONS.has(reason)) m.protocolError(reason);
    },
    protocolError(reason) {
      m.protocolError(reason);
    },
  };
}
