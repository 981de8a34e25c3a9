/**
 * The reader thread: answers the control socket's reads (`events`, `vms`, `poison`, `status`
 * totals) on a read-only connection of its own, so that a query over ten thousand rows costs the
 * verdict path nothing. In WAL mode a reader sees every transaction committed before its query
 * began; the caller first waits (asynchronously) for the write-ahead rows to be committed.
 */

import { isMainThread, type MessagePort, parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { jsonText } from './encoded-json.js';
import { StoreQueries } from './queries.js';
import { yieldToVerdictPath } from './thread-priority.js';

export interface ReaderData {
  kind: 'seawall-reader';
  path: string;
}

/** The reads a reader answers: StoreQueries methods that only read and return plain data. */
export const READER_METHODS = ['events', 'vms', 'poisonedPages', 'totals'] as const;
export type ReaderMethod = (typeof READER_METHODS)[number];

export interface ReaderRequest {
  id: number;
  method: ReaderMethod;
  args: unknown[];
  /** Answer with the result as JSON text (`json`) rather than as a cloned value (`result`). */
  encode?: boolean;
}

export interface ReaderReply {
  id: number;
  result?: unknown;
  json?: Uint8Array;
  error?: string;
}

function run(data: ReaderData, port: MessagePort): void {
  yieldToVerdictPath();
  const db = new Database(data.path, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 1000');
  let failure: unknown = null;
  const queries = new StoreQueries(db, (err) => {
    failure = err;
  });
  port.on('message', (m: ReaderRequest) => {
    failure = null;
    try {
      if (!READER_METHODS.includes(m.method)) throw new Error(`not a read: ${String(m.method)}`);
      const fn = queries[m.method] as (...a: unknown[]) => unknown;
      const result = fn.apply(queries, m.args);
      if (failure) throw failure;
      if (m.encode) {
        // A buffer of its own (not Buffer's shared pool), so that it can be transferred, not copied.
        const json = new TextEncoder().encode(jsonText(result));
        port.postMessage({ id: m.id, json } satisfies ReaderReply, [json.buffer]);
      } else port.postMessage({ id: m.id, result } satisfies ReaderReply);
    } catch (err) {
      port.postMessage({ id: m.id, error: (err as Error).message ?? String(err) } satisfies ReaderReply);
    }
  });
}

if (!isMainThread && (workerData as ReaderData | null)?.kind === 'seawall-reader' && parentPort)
  run(workerData as ReaderData, parentPort);
