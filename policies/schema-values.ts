/**
 * Zod types for the scalar values a policy (or a test file, or an event) writes as text:
 * durations (`5s`, `10m`), rates in mcelog's vocabulary (`3 / 10m`), 64-bit addresses and
 * small integers. YAML is loaded with `intAsBigInt`, so integers arrive as bigints and a GPA
 * above 2^53 keeps every bit; these types turn them into what the compiler needs.
 */
import * as z from 'zod';

const U64_MAX = (1n << 64n) - 1n;

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(?:\d+(?:ms|s|m|h|d))+$/;
const DURATION_PART = /(\d+)(ms|s|m|h|d)/g;
const RATE = /^(\d+)\s*\/\s*((?:\d+(?:ms|s|m|h|d))+)$/;

/** Milliseconds for `500ms`, `5s`, `10m`, `24h`, `7d` or sums such as `5m30s`; null otherwise. */
export function parseDuration(text: string): number | null {
  const t = text.trim();
  if (!DURATION.test(t)) return null;
  let ms = 0;
  for (const m of t.matchAll(DURATION_PART)) ms += Number(m[1]) * (UNIT_MS[m[2] as string] ?? Number.NaN);
  return Number.isSafeInteger(ms) ? ms : null;
}

/** A rate threshold: `count` events within `windowMs`, mcelog's `10 / 24h`. */
export interface Rate {
  count: number;
  windowMs: number;
  /** The text as written, for explain output. */
  text: string;
}

/** Parses `3 / 10m`; null when malformed or when the count or window is zero. */
export function parseRate(text: string): Rate | null {
  const m = RATE.exec(text.trim());
  if (!m) return null;
  const count = Number(m[1]);
  const windowMs = parseDuration(m[2] as string);
  if (!Number.isSafeInteger(count) || count < 1 || windowMs === null || windowMs <= 0) return null;
  return { count, windowMs, text: `${count} / ${m[2]}` };
}

/** A duration written as text, e.g. `5s`; yields milliseconds. */
export const durationSchema = z.string().transform((text, ctx) => {
  const ms = parseDuration(text);
  if (ms === null) {
    ctx.addIssue({
      code: 'custom',
      message: `'${text}' is not a duration (write e.g. 500ms, 5s, 10m, 24h, 7d)`,
      params: { policyCode: 'duration-syntax' },
    });
    return z.NEVER;
  }
  return ms;
});

/** The longest a timer waits: Node runs a longer setTimeout after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A duration the daemon waits out on a timer (a kill's grace): at most 24 days. */
export const timerDurationSchema = durationSchema.refine((ms) => ms <= MAX_TIMER_MS, {
  message: `longer than a timer can wait (at most ${MAX_TIMER_MS} ms, about 24 days)`,
});

/**
 * Labels as a record. zod leaves a `__proto__` key out of a record without a word, which would
 * drop a label matcher (the rule then matching every VM): such a key is refused instead.
 */
export function labelsSchema<T extends z.ZodType>(value: T) {
  return z
    .unknown()
    .check((ctx) => {
      const v = ctx.value;
      if (v !== null && typeof v === 'object' && Object.hasOwn(v, '__proto__'))
        ctx.issues.push({ code: 'custom', input: v, message: "'__proto__' cannot be a label name" });
    })
    .pipe(z.record(z.string(), value));
}

/**
 * Largest rate threshold. Every key the rate state keeps (a VM, a page, the host) may hold as many
 * event times as the largest threshold, so an unbounded one is an unbounded allocation — a
 * threshold of 2^53−1 made every decision fail over to the safe default. mcelog's own thresholds
 * are tens; ten thousand leaves room for any real policy.
 */
export const MAX_RATE_COUNT = 10_000;

/** A rate written as `N / duration`. */
export const rateSchema = z.string().transform((text, ctx): Rate => {
  const rate = parseRate(text);
  if (rate !== null && rate.count > MAX_RATE_COUNT) {
    ctx.addIssue({
      code: 'custom',
      message: `'${text}': a rate threshold is at most ${MAX_RATE_COUNT} events per window`,
      params: { policyCode: 'rate-syntax' },
    });
    return z.NEVER;
  }
  if (rate === null) {
    ctx.addIssue({
      code: 'custom',
      message: `'${text}' is not a rate (write it as mcelog does: '3 / 10m', count ≥ 1 per non-zero window)`,
      params: { policyCode: 'rate-syntax' },
    });
    return z.NEVER;
  }
  return rate;
});

/** Turns a YAML/JSON integer (number or bigint) or a `0x…`/decimal string into a u64 bigint. */
export function toU64(value: unknown): bigint | null {
  let n: bigint | null = null;
  if (typeof value === 'bigint') n = value;
  else if (typeof value === 'number' && Number.isSafeInteger(value)) n = BigInt(value);
  else if (typeof value === 'string') {
    const t = value.trim().replaceAll('_', '');
    if (/^(0[xX][0-9a-fA-F]+|0[bB][01]+|[0-9]+)$/.test(t)) n = BigInt(t);
  }
  return n !== null && n >= 0n && n <= U64_MAX ? n : null;
}

/** A 64-bit unsigned value: YAML int, JSON safe integer, or a hex/decimal string. */
export const u64Schema = z
  .union([z.bigint(), z.number(), z.string()], {
    error: (i) =>
      i.input === undefined ? 'required' : 'expected an unsigned 64-bit integer (e.g. 0x80000000)',
  })
  .transform((value, ctx) => {
    const n = toU64(value);
    if (n === null) {
      ctx.addIssue({
        code: 'custom',
        message: `${String(value)} is not an unsigned 64-bit integer (write hex such as 0x80000000)`,
        params: { policyCode: 'gpa-range' },
      });
      return z.NEVER;
    }
    return n;
  });

/** A non-negative integer that fits a JS number; accepts YAML bigints and hex strings. */
export function smallIntSchema(max: number, what: string, min = 0) {
  return z
    .union([z.bigint(), z.number(), z.string()], {
      error: (i) => (i.input === undefined ? 'required' : `${what} must be an integer`),
    })
    .transform((value, ctx) => {
      const n = toU64(value);
      if (n === null || n > BigInt(max) || n < BigInt(min)) {
        ctx.addIssue({
          code: 'custom',
          message: `${what} must be an integer from ${min} to ${max}, got ${String(value)}`,
        });
        return z.NEVER;
      }
      return Number(n);
    });
}
