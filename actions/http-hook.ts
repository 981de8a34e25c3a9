/**
 * The `http` migration hook: POST the payload as JSON to the orchestrator. Each attempt has its own
 * timeout; failures are retried with exponential backoff, always with the same `Idempotency-Key`
 * (the migration id), so an orchestrator that saw the first attempt does not start a second
 * migration (IETF draft-ietf-httpapi-idempotency-key-header). 2xx: accepted. 409/422: refused —
 * final, not retried. Anything else, or no answer: failed / timed_out after the last retry.
 */
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

export class HttpHook implements HookRunner {
  readonly name: string;
  readonly kind = 'http' as const;
  readonly #spec: HttpHookSpec;

  constructor(name: string, spec: HttpHookSpec) {
    this.name = name;
    this.#spec = spec;
  }

  async run(payload: MigrationPayload): Promise<HookResult> {
    const body = JSON.stringify(payload);
    let last: HookResult = { outcome: 'failed', detail: null, attempts: 0 };
    for (let attempt = 0; attempt <= this.#spec.retries; attempt++) {
      if (attempt > 0) {
        const delay = Math.min(this.#spec.backoffMs * 2 ** (attempt - 1), this.#spec.maxBackoffMs);
        await new Promise((r) => setTimeout(r, delay));
      }
      last = { ...(await this.#attempt(body, payload.migrationId)), attempts: attempt + 1 };
      if (last.outcome === 'accepted' || last.outcome === 'refused') return last;
    }
    return last;
  }

  async #attempt(body: string, key: string): Promise<Omit<HookResult, 'attempts'>> {
    const signal = AbortSignal.timeout(this.#spec.timeoutMs);
    try {
      const res = await fetch(this.#spec.url, {
        method: 'POST',
        headers: {
          ...this.#spec.headers,
          'content-type': 'application/json',
          'idempotency-key': key,
          'user-agent': 'seawall',
        },
        body,
        signal,
        redirect: 'error',
      });
      const text = (await res.text()).slice(0, DETAIL_BYTES);
      const detail = `HTTP ${res.status}${text ? `: ${text}` : ''}`;
      if (res.status >= 200 && res.status < 300) return { outcome: 'accepted', detail };
      if (REFUSED.has(res.status)) return { outcome: 'refused', detail };
      return { outcome: 'failed', detail };
    } catch (err) {
      if (signal.aborted)
        return { outcome: 'timed_out', detail: `no answer within ${this.#spec.timeoutMs} ms` };
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      return { outcome: 'failed', detail: cause ?? (err as Error).message };
    }
  }
}
