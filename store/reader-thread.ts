/**
 * The reader thread: answers the control socket's reads (`events`, `vms`, `poison`, `status`
 * totals, `why`) on a read-only connection of its own, so that a query over ten thousand rows, or
 * the policies `why` compiles, cost the verdict path nothing. In WAL mode a reader sees every
 * transaction committed before its read began (each answer is one read transaction); the caller
 * first waits (asynchronously) for the write-ahead rows to be committed.
 */

import { isMainThread, type MessagePort, parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { thrownText } from '../errors/index.js';
import { jsonText } from './encoded-json.js';
import { StoreQueries } from './queries.js';
import { yieldToVerdictPath } from './thread-priority.js';
import type { PolicyText, WhyBuilder, WhyQuery } from './why.js';

export interface ReaderData {
  kind: 'seawall-reader';
  path: string;
}

/** The reads a reader answers: StoreQueries methods that only read and return plain data. */
export const READER_METHODS = ['events', 'vms', 'poisonedPages', 'totals', 'follow'] as const;
/** The reads, and `why` (store/why.ts: [query, policy in force]). */
export type ReaderMethod = (typeof READER_METHODS)[number] | 'why';

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
  // A query and the check of what it reported, with nothing between them. In one read
  // transaction: in WAL mode its statements all see one snapshot, so the figures of an answer
  // (status's counts, a VM's row and its last action, why's windows) agree with each other while
  // the writer thread commits between them.
  const read = (query: () => unknown): unknown => {
    failure = null;
    const result = db.transaction(query)();
    if (failure) throw failure;
    return result;
  };
  // Made at the first `why`, which is when the policy compiler and its schema library are first
  // evaluated (in the bundle too), and kept for the thread's life: it caches the versions it compiled.
  let why: Promise<WhyBuilder> | null = null;
  const answer = async (m: ReaderRequest): Promise<unknown> => {
    if (m.method === 'why') {
      why ??= import('./why.js').then((w) => new w.WhyBuilder(queries));
      const builder = await why;
      return read(() => builder.build(m.args[0] as WhyQuery, m.args[1] as PolicyText | null));
    }
    if (!READER_METHODS.includes(m.method)) throw new Error(`not a read: ${String(m.method)}`);
    const fn = queries[m.method] as (...a: unknown[]) => unknown;
    return read(() => fn.apply(queries, m.args));
  };
  port.on('message', async (m: ReaderRequest) => {
    try {
      const result = await answer(m);
      if (m.encode) {
        // A buffer of its own (not Buffer's shared pool), so that it can be transferred, not copied.
        const json = new TextEncoder().encode(jsonText(result));
        port.postMessage({ id: m.id, json } satisfies ReaderReply, [json.buffer]);
      } else port.postMessage({ id: m.id, result } satisfies ReaderReply);
    } catch (err) {
      port.postMessage({ id: m.id, error: thrownText(err) } satisfies ReaderReply);
    }
  });
}

if (!isMainThread && (workerData as ReaderData | null)?.kind === 'seawall-reader' && parentPort)
  run(workerData as ReaderData, parentPort);
