/**
 * The event store's cost per event row, apart from the daemon: generated rows of a storm (VMs ×
 * pages, one session per VM) inserted through the store's own insert statements
 * (`EventStore.appendRows`, the SQL the writer thread runs) into a fresh file, with transactions
 * of each size given. The writer thread's rate is bounded by this figure (docs/performance.md).
 * Usage: node --import tsx bench/store-rows.ts [--rows N] [--tx 500,2000,5000] [--vms 32] [--pages 256] [--json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type EventParams, EventStore, hex64, valuesOfParams } from '../store/index.js';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '200000' },
    tx: { type: 'string', default: '500,2000,5000' },
    vms: { type: 'string', default: '32' },
    pages: { type: 'string', default: '256' },
    json: { type: 'boolean', default: false },
  },
});
const ROWS = Number(values.rows);
const VMS = Number(values.vms);
const PAGES = Number(values.pages);
const REPEATS = 3;
const T0 = Date.UTC(2026, 11, 1);
const labels = JSON.stringify({ pool: 'web', zone: 'a' });

/** Event `i` of the storm: VMs in turn, each VM's pages visited in a scattered order. */
function row(i: number, bootId: string): EventParams {
  const vm = i % VMS;
  const ord = Math.floor(i / VMS) + 1;
  return {
    boot_id: bootId,
    session_id: vm + 1,
    seq: ord,
    time_ms: T0 + Math.floor(i / 25),
    vm: `vm-${vm}`,
    labels,
    vcpu: i % 8,
    kind: 'sea',
    esr: hex64(0x92000410n),
    ec: 0x24,
    fsc: 0x10,
    fsc_class: 'sea',
    abort: 'data',
    severity: 'uer',
    sigbus_code: null,
    gva: hex64(0xffff800012345000n),
    gpa: hex64(0x40000000n + BigInt((i * 7919) % PAGES) * 0x1000n),
    replay: 0,
    fallback_action: null,
    action: 'inject',
    rule: 'default',
    policy_version: 'f44a8df5c141',
    downgrade: null,
    verdict_action: 1,
    verdict_flags: 0,
    latency_ns: 12_345,
    non_conforming: null,
    kernel_mismatch: null,
    plugin_time_ns: hex64(BigInt(T0) * 1_000_000n + BigInt(i) * 1000n),
    ord,
  };
}

const dir = mkdtempSync(join(tmpdir(), 'seawall-bench-rows-'));
const results: { tx: number; usPerRow: number; spread: [number, number] }[] = [];
try {
  for (const tx of values.tx.split(',').map(Number)) {
    const runs: number[] = [];
    for (let r = 0; r < REPEATS; r++) {
      const store = new EventStore({ path: join(dir, `tx${tx}-${r}.sqlite`) });
      const rows = Array.from({ length: ROWS }, (_, i) => valuesOfParams(row(i, store.bootId)));
      const t = performance.now();
      for (let i = 0; i < ROWS; i += tx) {
        if (store.appendRows(rows.slice(i, i + tx)) === null) throw new Error('insert failed');
      }
      runs.push(((performance.now() - t) * 1000) / ROWS);
      store.close();
    }
    runs.sort((a, b) => a - b);
    results.push({ tx, usPerRow: runs[1] as number, spread: [runs[0] as number, runs[2] as number] });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (values.json) console.log(JSON.stringify({ rows: ROWS, vms: VMS, pages: PAGES, results }));
else {
  console.log(`${ROWS.toLocaleString('en')} rows, ${VMS} VMs × ${PAGES} pages, median of ${REPEATS}`);
  for (const r of results)
    console.log(
      `${String(r.tx).padStart(6)} rows per transaction: ${r.usPerRow.toFixed(1)} µs per row ` +
        `(${r.spread[0].toFixed(1)}–${r.spread[1].toFixed(1)})`,
    );
}
