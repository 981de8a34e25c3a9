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
import { EventStore, toStored, valuesOfParams } from '../store/index.js';
import { stormRow } from './storm-rows.js';

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
const dir = mkdtempSync(join(tmpdir(), 'seawall-bench-rows-'));
const results: { tx: number; usPerRow: number; spread: [number, number] }[] = [];
try {
  for (const tx of values.tx.split(',').map(Number)) {
    const runs: number[] = [];
    for (let r = 0; r < REPEATS; r++) {
      const store = new EventStore({ path: join(dir, `tx${tx}-${r}.sqlite`) });
      store.recovered(); // as a daemon's start: nothing left to recover, no index for older lines
      // In the form the writer thread reads them from its records: 64-bit values as stored.
      const rows = Array.from(
        { length: ROWS },
        (_, i) =>
          toStored(valuesOfParams(stormRow(i, store.bootId, VMS, PAGES))) as ReturnType<
            typeof valuesOfParams
          >,
      );
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
