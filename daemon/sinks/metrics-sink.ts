/**
 * Prometheus as a sink: every event, action, downgrade, session and protocol error counted. Each
 * record is counted on its own: a record the metrics layer refuses is reported and skipped, and
 * the rest of the batch — other VMs' events — is still counted.
 *
 * An event the plugin's fallback answered is counted once, as the plugin reports it: a replay
 * (`via` replay; a replay the store already holds is a duplicate and skipped), or, for an event
 * the daemon did answer, the APPLIED `source` FALLBACK that says its verdict came too late or
 * could not be applied (`via` applied). Each answered event of a 1.1 session awaits its APPLIED
 * in a bounded ring per session (store/awaiting-applied.ts), noted after the verdicts are
 * written: an APPLIED takes its event's entry, so a repeated one, or one naming a seq the daemon
 * did not answer in that session, counts nothing. A 1.1 plugin drops its kept copy of an event
 * answered late, so that event is not replayed as well.
 */

import { type EventRecord, poisonsPage, type SessionInfo, type Sink } from '../../events/index.js';
import type { SeawallMetrics } from '../../metrics/index.js';
import { AwaitingApplied } from '../../store/index.js';
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

function count(m: SeawallMetrics, pages: PoisonedPageCounts, awaiting: Awaiting, r: EventRecord): void {
  const e = r.event;
  const vm = labelOf(e.vm);
  m.memoryError(vm, e.kind, e.severity);
  if (poisonsPage(r)) {
    const n = pages.add(e.vm.id, e.gpa as bigint);
    if (n !== null) m.setPoisonedPages(vm, n);
  }
  if (r.kernelMismatch) for (const field of r.kernelMismatch) m.kernelMismatch(field);
  if (r.replay) {
    m.fallbackReported(vm, 1, 'replay');
    return;
  }
  const d = r.decision;
  if (!d) return;
  awaiting.answered(r);
  // Before the counts by rule: a rule name the metrics layer refuses must not cost the latency.
  m.observeVerdictLatency(Number(r.latencyNs) / NS_PER_S);
  m.action(d.action, d.rule);
  if (d.downgrade) m.downgrade(d.downgrade.from, d.downgrade.to, d.rule);
  if (r.verdictDowngrade) m.downgrade(r.verdictDowngrade.from, r.verdictDowngrade.to, d.rule);
}

/** The answered events of open 1.1 sessions that await their APPLIED. */
class Awaiting {
  readonly #events = new AwaitingApplied();
  /** Sessions ended: a record decided as its session closed must not make it a ring again. */
  readonly #closed = new WeakSet<SessionInfo>();

  answered(r: EventRecord): void {
    const s = r.session;
    // A 1.0 session's APPLIED never names the fallback.
    if (s.minor < 1 || this.#closed.has(s)) return;
    this.#events.note(s.id, s.vcpuCount, r.msg.seq, r.ord ?? r.msg.seq, 0);
  }

  /** Whether `seq` names an answered event of `s` that awaited its APPLIED, which it no longer does. */
  take(s: SessionInfo, seq: number): boolean {
    return this.#events.take(s.id, seq) !== undefined;
  }

  closed(s: SessionInfo): void {
    this.#closed.add(s);
    this.#events.forget(s.id);
  }
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
  const awaiting = new Awaiting();
  return {
    name: 'metrics',
    afterReply(batch) {
      for (const r of batch) {
        if (r.duplicate) continue;
        try {
          count(m, pages, awaiting, r);
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
    applied(s, seq, _result, detail) {
      // Taken whatever its source, so that the entry is freed and a repeat finds nothing.
      if (awaiting.take(s, seq) && detail?.source === 'fallback')
        m.fallbackReported(labelOf(s.vm), 1, 'applied');
    },
    sessionClosed(s, outcome) {
      awaiting.closed(s);
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
