/**
 * `seawall events --follow`: after the listing, the events stored from then on, as they are stored,
 * until interrupted. Each second the daemon is asked for the events stored after the last one
 * printed (`events` with `afterId`, in the order they were stored), at most MAX_QUERY_LIMIT at a
 * time and again at once while answers come full. The daemon answers only up to its lowest event
 * not yet committed (store/write-ahead.ts `uncommittedFrom`), so an event committed late — held
 * through a store fault — is printed when it is committed, not passed over.
 *
 * A daemon that stops answering (restarted, upgraded) is asked again each second, said once on
 * stderr; when it answers again the following goes on from the same event, since event ids go on
 * across restarts of one store. A store that starts again below it (removed and made anew) is
 * followed from its start, and said.
 */
import { MAX_QUERY_LIMIT, type StoredEvent } from '../../store/index.js';
import { CliError } from '../cli-error.js';
import type { CliContext } from '../context.js';
import { askDaemon, type ControlOptions } from './control-io.js';

/** How often the daemon is asked for what was stored since. */
export const FOLLOW_INTERVAL_MS = 1000;

export interface FollowQuery {
  vm?: string;
  sinceMs?: number;
}

/** Prints a batch of events (oldest first) as they are followed. */
export type PrintEvents = (events: readonly StoredEvent[]) => void;

/**
 * The highest event id stored now: where following starts (taken before the listing, so that an
 * event stored between the two is not lost).
 */
export async function lastStoredId(ctx: CliContext, opts: ControlOptions): Promise<number> {
  const status = await askDaemon(ctx, opts, 'status');
  if (status.store === null)
    throw new CliError(
      'failed',
      'the daemon keeps no event store (--no-store): there are no events to follow',
    );
  return status.store.lastId ?? 0;
}

/**
 * Follows from `afterId` until the process is interrupted (never returns but by an error other
 * than the daemon's absence). `listed`: ids above `afterId` the listing printed already.
 */
export async function follow(
  ctx: CliContext,
  opts: ControlOptions,
  query: FollowQuery,
  afterId: number,
  listed: ReadonlySet<number>,
  print: PrintEvents,
): Promise<never> {
  let cursor = afterId;
  const skip = new Set(listed);
  let lost: string | null = null;
  for (;;) {
    let batch: StoredEvent[];
    try {
      if (lost !== null) cursor = await resumeFrom(ctx, opts, cursor);
      batch = await askDaemon(ctx, opts, 'events', { ...query, afterId: cursor, limit: MAX_QUERY_LIMIT });
    } catch (err) {
      if (!(err instanceof CliError)) throw err;
      if (lost === null)
        ctx.io.err(`seawall: the daemon does not answer (${err.message}); asking again each second`);
      lost = err.message;
      await pause(FOLLOW_INTERVAL_MS);
      continue;
    }
    if (lost !== null) ctx.io.err('seawall: the daemon answers again');
    lost = null;
    const fresh = batch.filter((e) => !skip.delete(e.id));
    const last = batch[batch.length - 1];
    if (last) cursor = last.id;
    if (fresh.length > 0) print(fresh);
    if (batch.length < MAX_QUERY_LIMIT) await pause(FOLLOW_INTERVAL_MS);
  }
}

/** After the daemon was away: the cursor, or 0 when its store now ends below it (a new store). */
async function resumeFrom(ctx: CliContext, opts: ControlOptions, cursor: number): Promise<number> {
  const last = await lastStoredId(ctx, opts);
  if (last >= cursor) return cursor;
  ctx.io.err(
    `seawall: the daemon's store ends at event ${last}, below the ${cursor} followed: a new store; following it from its start`,
  );
  return 0;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
