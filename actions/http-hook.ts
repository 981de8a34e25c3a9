/**
 * The `http` migration hook: POST the payload as JSON to the orchestrator. Each attempt has its own
 * timeout; failures are retried with exponential backoff, always with the same `Idempotency-Key`
 * (the migration id), so an orchestrator that saw the first attempt does not start a second
 * migration (IETF draft-ietf-httpapi-idempotency-key-header). 2xx: accepted. 409/422: refused —
 * final, not retried. Anything else, or no answer: failed / timed_out after the last retry. When
 * the daemon stops (the abort signal), the request under way and any backoff are abandoned: failed.
 * The outcome is the status's, decided when the status arrives. Of the response body only what the
 * detail keeps is read, within a bound of its own; the peer is not trusted to end it, and a body
 * that fails or stalls costs the detail, never the outcome.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { HookResult, HookRunner, MigrationPayload } from './hook-types.js';

export interface HttpHookSpec {
  url: string;
  timeoutMs: number;
  /** Attempts after the first. */
  retries: number;
  backoffMs: number;
  maxBackoffMs: number;
  headers: Record<string, string>;
}

const REFUSED = new Set([409, 422]);
/** Most bytes of a response body kept for the record. */
const DETAIL_BYTES = 512;
/** Longest wait for those bytes once the status has arrived (at most the attempt's timeout). */
const DETAIL_MS = 1000;
const STOPPED = 'daemon stopping';

export class HttpHook implements HookRunner {
  readonly name: string;
  readonly kind = 'http' as const;
  readonly #spec: HttpHookSpec;

  constructor(name: string, spec: HttpHookSpec) {
    this.name = name;
    this.#spec = spec;
  }

  async run(payload: MigrationPayload, stop?: AbortSignal): Promise<HookResult> {
    const body = JSON.stringify(payload);
    let last: HookResult = { outcome: 'failed', detail: null, attempts: 0 };
    for (let attempt = 0; attempt <= this.#spec.retries; attempt++) {
      if (attempt > 0) {
        const delay = Math.min(this.#spec.backoffMs * 2 ** (attempt - 1), this.#spec.maxBackoffMs);
        await sleep(delay, undefined, stop ? { signal: stop } : {}).catch(() => {});
      }
      if (stop?.aborted) return { outcome: 'failed', detail: STOPPED, attempts: attempt };
      last = { ...(await this.#attempt(body, payload.migrationId, stop)), attempts: attempt + 1 };
      if (last.outcome === 'accepted' || last.outcome === 'refused') return last;
    }
    return last;
  }

  async #attempt(body: string, key: string, stop?: AbortSignal): Promise<Omit<HookResult, 'attempts'>> {
    // Aborts the request and its body: at the daemon's stop, or when the bound of the phase under
    // way passes — the attempt's timeout until the status arrives, then the detail's own.
    const request = new AbortController();
    const abort = () => request.abort();
    stop?.addEventListener('abort', abort, { once: true });
    let bound = AbortSignal.timeout(this.#spec.timeoutMs);
    bound.addEventListener('abort', abort, { once: true });
    try {
      let res: Response;
      try {
        res = await fetch(this.#spec.url, {
          method: 'POST',
          headers: {
            ...this.#spec.headers,
            'content-type': 'application/json',
            'idempotency-key': key,
            'user-agent': 'seawall',
          },
          body,
          signal: request.signal,
          redirect: 'error',
        });
      } catch (err) {
        if (stop?.aborted) return { outcome: 'failed', detail: STOPPED };
        if (bound.aborted)
          return { outcome: 'timed_out', detail: `no answer within ${this.#spec.timeoutMs} ms` };
        const cause = (err as { cause?: { code?: string } }).cause?.code;
        return { outcome: 'failed', detail: cause ?? (err as Error).message };
      }
      // The status is the answer. The body only adds to the detail: a read of it that fails or
      // stalls leaves the outcome as it is (a 2xx whose body never ends was still accepted, and an
      // attempt retried then would ask the orchestrator again).
      const outcome =
        res.status >= 200 && res.status < 300 ? 'accepted' : REFUSED.has(res.status) ? 'refused' : 'failed';
      bound.removeEventListener('abort', abort);
      const detailMs = Math.min(this.#spec.timeoutMs, DETAIL_MS);
      bound = AbortSignal.timeout(detailMs);
      bound.addEventListener('abort', abort, { once: true });
      const text = await readDetail(res.body).then(
        (t) => (t ? `: ${t}` : ''),
        (err: Error) => {
          const why = stop?.aborted ? STOPPED : bound.aborted ? `none within ${detailMs} ms` : err.message;
          return ` (body not read: ${why})`;
        },
      );
      return { outcome, detail: `HTTP ${res.status}${text}` };
    } finally {
      bound.removeEventListener('abort', abort);
      stop?.removeEventListener('abort', abort);
    }
  }
}

/**
 * The first DETAIL_BYTES bytes of `body`, as UTF-8. Reading stops there and the body is cancelled,
 * which closes the connection: a peer that streams without end costs one chunk, never the stream.
 * A failed or aborted read rejects, as reading the whole body would.
 */
async function readDetail(body: ReadableStream<Uint8Array> | null): Promise<string> {
  if (!body) return '';
  const kept = new Uint8Array(DETAIL_BYTES);
  let held = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return new TextDecoder().decode(kept.subarray(0, held));
    const n = Math.min(value.byteLength, DETAIL_BYTES - held);
    kept.set(value.subarray(0, n), held);
    held += n;
    if (held === DETAIL_BYTES) {
      await reader.cancel().catch(() => {});
      // `stream` holds back a character cut at the bound instead of decoding it to U+FFFD.
      return new TextDecoder().decode(kept, { stream: true });
    }
  }
}
