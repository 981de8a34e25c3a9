/**
 * Every wait in the suite goes through here: on a promise (an event, a line, an exit) or on a
 * condition re-checked as the state it watches changes, always with a deadline, and a timeout
 * says what was awaited and what was seen instead. A hung test then fails within WAIT_MS with
 * that message, instead of stalling its file until the runner's per-test timeout.
 *
 * The deadline is a safety net, not a synchronisation device: nothing proceeds because time
 * passed. WAIT_MS is generous because a 2-core machine shared with other builds is slow, not
 * wrong; SEAWALL_TEST_WAIT_MS overrides it.
 */
import type { EventEmitter } from 'node:events';

/** The default deadline of a wait, in ms. */
export const WAIT_MS = Number(process.env.SEAWALL_TEST_WAIT_MS ?? 30_000);

/** A wait that passed its deadline. */
export class WaitTimeout extends Error {
  override name = 'WaitTimeout';
  constructor(
    readonly what: string,
    readonly ms: number,
    state?: string,
  ) {
    super(`timed out after ${ms} ms waiting for ${what}${state ? `; ${state}` : ''}`);
  }
}

export interface WaitOptions {
  /** Deadline in ms (default WAIT_MS). */
  timeoutMs?: number;
  /** Describes the current state, for the timeout message. */
  state?: () => string;
}

/** `promise`'s outcome, or a WaitTimeout naming `what` once the deadline passes. */
export function within<T>(what: string, promise: Promise<T>, opts: WaitOptions = {}): Promise<T> {
  const ms = opts.timeoutMs ?? WAIT_MS;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new WaitTimeout(what, ms, describe(opts.state))), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface UntilOptions extends WaitOptions {
  /** How often the condition is re-checked, in ms (default 10). */
  everyMs?: number;
}

/**
 * Resolves with the first value of `probe` that is neither undefined, null nor false. For state
 * that changes without an event this test can subscribe to (a counter in another process, rows
 * in a file): `probe` is re-run every `everyMs`, and a probe that throws fails the wait.
 */
export async function until<T>(
  what: string,
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  opts: UntilOptions = {},
): Promise<T> {
  const ms = opts.timeoutMs ?? WAIT_MS;
  const every = opts.everyMs ?? 10;
  const deadline = performance.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) return value;
    if (performance.now() >= deadline) throw new WaitTimeout(what, ms, describe(opts.state));
    await new Promise((resolve) => setTimeout(resolve, every));
  }
}

/** The arguments of the next `name` event of `emitter` for which `match` holds. */
export function nextEvent<A extends unknown[] = unknown[]>(
  emitter: EventEmitter,
  name: string,
  what: string,
  match: (...args: A) => boolean = () => true,
  opts: WaitOptions = {},
): Promise<A> {
  let listener: ((...args: A) => void) | undefined;
  const seen = new Promise<A>((resolve) => {
    listener = (...args: A) => {
      if (match(...args)) resolve(args);
    };
    emitter.on(name, listener as (...args: unknown[]) => void);
  });
  return within(what, seen, opts).finally(() => {
    if (listener) emitter.off(name, listener as (...args: unknown[]) => void);
  });
}

function describe(state: (() => string) | undefined): string | undefined {
  if (!state) return undefined;
  try {
    return state();
  } catch (err) {
    return `(state unavailable: ${(err as Error).message})`;
  }
}
