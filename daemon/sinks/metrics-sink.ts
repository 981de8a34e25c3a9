/** Prometheus as a sink: every event, action, downgrade, session and protocol error counted. */

import type { Sink } from '../../events/index.js';
import type { SeawallMetrics } from '../../metrics/index.js';

const NS_PER_S = 1e9;

export function metricsSink(m: SeawallMetrics): Sink {
  return {
    name: 'metrics',
    afterReply(batch) {
      for (const r of batch) {
        if (r.duplicate) continue;
        const e = r.event;
        m.memoryError(e.vm.id, e.kind, e.severity);
        if (r.kernelMismatch) for (const field of r.kernelMismatch) m.kernelMismatch(field);
        if (r.replay) {
          m.fallbackReported(e.vm.id, 1);
          continue;
        }
        const d = r.decision;
        if (!d) continue;
        m.action(d.action, d.rule);
        if (d.downgrade) m.downgrade(d.downgrade.from, d.downgrade.to, d.rule);
        if (r.verdictDowngrade) m.downgrade(r.verdictDowngrade.from, r.verdictDowngrade.to, d.rule);
        m.observeVerdictLatency(Number(r.latencyNs) / NS_PER_S);
      }
    },
    sessionOpened() {
      m.sessionOpened();
    },
    sessionClosed(s, outcome) {
      m.sessionClosed(outcome === 'protocol_error' ? 'protocol_error' : 'closed');
      m.vmDeparted(s.vm.id);
    },
    sessionRejected(reason) {
      m.protocolError(reason);
    },
    protocolError(reason) {
      m.protocolError(reason);
    },
  };
}
