/**
 * `seawall events --follow`: after the listing, the events stored from then on, as they are stored,
 * until interrupted. The daemon's `follow` read (store/follow-query.ts) gives the events stored
 * after an id, in the order stored, and how far it reached (`through`): asked again from there each
 * second, or at once while it says there is more. It never reaches past an event not yet
 * committed, so one committed late — held through a store fault — is printed when it is, not
 * passed over.
 *
 * A daemon that stops answering (restarted, upgraded) is asked again each second, said once on
 * stderr, and followed on from the same event: a store's ids go on across restarts. Each answer
 * names its store (when it was made); another store — the file moved aside and a new one made —
 * is followed from its start, and said. When whoever reads stdout is gone (`| head -1`) the
 * command ends, even if no event comes to find it out.
 */
import { setTimeout as pause } from 'node:timers/promises';
import { type ControlResults, controlRequest, isControlError } from '../../control/index.js';
import { readerGone } from '../../kvm/index.js';
import type { FollowQuery, StoredEvent } from '../../store/index.js';
import { CliError } from '../cli-error.js';
import type { CliContext } from '../context.js';
import { findSocket } from '../daemon-sockets.js';
import { askDaemon, type ControlOptions, formatTime } from './control-io.js';

/** How often the daemon is asked for what was stored since. */
export const FOLLOW_INTERVAL_MS = 1000;

/** The filter the listing and the following share. */
export type FollowFilter = Pick<FollowQuery, 'vm' | 'sinceMs'>;

/** Prints a batch of events (oldest first) as they are followed. */
export type PrintEvents = (events: readonly StoredEvent[]) => void;

/** Where following starts: asked before the listing, so that an event stored between is not lost. */
export type FollowStart = Pick<ControlResults['follow'], 'through' | 'storeCreatedMs'>;

export function followStart(
  ctx: CliContext,
  opts: ControlOptions,
  filter: FollowFilter,
): Promise<FollowStart> {
  return askDaemon(ctx, opts, 'follow', { ...filter });
}

/** Failures that may pass: the daemon away or busy, a read of its store that failed. */
const PASSING = new Set([
  'SEAWALL_CONTROL_UNAVAILABLE',
  'SEAWALL_CONTROL_TIMEOUT',
  'SEAWALL_CONTROL_BUSY',
  'SEAWALL_CONTROL_FAILED',
]);

/**
 * Follows from `start` until stdout's reader is gone (then 0) or a request is refused for good (a
 * daemon that has no `follow`, say). `listed`: the listing's events above `start.through`.
 */
export async function follow(
  ctx: CliContext,
  opts: ControlOptions,
  filter: FollowFilter,
  start: FollowStart,
  listed: readonly StoredEvent[],
  print: PrintEvents,
): Promise<number> {
  const socket = findSocket('control', opts.controlSocket, ctx.env);
  let cursor = start.through;
  let store = start.storeCreatedMs;
  const skip = new Set(listed.filter((e) => e.id > cursor).map((e) => e.id));
  let lost = false;
  for (;;) {
    if (readerGone(1)) return 0;
    let answer: ControlResults['follow'];
    try {
      answer = await controlRequest(socket, 'follow', { ...filter, afterId: cursor });
    } catch (err) {
      if (!isControlError(err)) throw err;
      if (!PASSING.has(err.code)) throw new CliError('failed', `${err.message} [${err.code}]`);
      const what = err.code === 'SEAWALL_CONTROL_FAILED' ? 'cannot read its store' : 'does not answer';
      if (!lost) ctx.io.err(`seawall: the daemon ${what} (${err.message}); asking again each second`);
      lost = true;
      await pause(FOLLOW_INTERVAL_MS);
      continue;
    }
    if (lost) ctx.io.err('seawall: the daemon answers again');
    lost = false;
    if (answer.storeCreatedMs !== store || answer.through < cursor) {
      ctx.io.err(
        `seawall: the daemon's store is another one now (made ${formatTime(answer.storeCreatedMs)}, ` +
          `${answer.through < cursor ? `holding no event ${cursor}` : 'not the one followed'}); following it from its start`,
      );
      store = answer.storeCreatedMs;
      cursor = 0;
      skip.clear();
      continue;
    }
    const fresh = answer.events.filter((e) => !skip.delete(e.id));
    if (fresh.length > 0) print(fresh);
    cursor = answer.through;
    if (!answer.more) await pause(FOLLOW_INTERVAL_MS);
  }
}
