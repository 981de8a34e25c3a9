/**
 * The control protocol's commands, their arguments and results. One zod schema per command's
 * arguments is the source of both validation and types. Requests and responses are one JSON
 * object per line:
 *
 *   → {"id":1,"cmd":"events","args":{"vm":"vm-7","sinceMs":1700000000000,"limit":50}}
 *   ← {"id":1,"ok":true,"result":[…]}
 *   ← {"id":1,"ok":false,"error":{"code":"SEAWALL_CONTROL_FORBIDDEN","message":"…"}}
 */
import * as z from 'zod';
import type {
  EncodedJson,
  EventQuery,
  FollowAnswer,
  FollowQuery,
  PoisonCursor,
  PoisonedPage,
  StoredEvent,
  StoreHealth,
  StoreTotals,
  VmSummary,
  WhyResult,
} from '../store/index.js';

export type { WhyCondition, WhyEntry, WhyOutcome, WhyResult } from '../store/index.js';

/** The longest VM id a request may name, in UTF-16 code units (a plugin's ids are at most 128 bytes). */
export const MAX_VM_ID_LENGTH = 256;

const vmId = z.string().min(1).max(MAX_VM_ID_LENGTH);

export const CommandArgs = {
  status: z.strictObject({ vm: vmId.optional() }),
  vms: z.strictObject({
    limit: z.number().int().positive().max(10_000).optional(),
    after: vmId.optional(),
  }),
  events: z.strictObject({
    vm: vmId.optional(),
    sinceMs: z.number().int().nonnegative().optional(),
    limit: z.number().int().positive().max(10_000).optional(),
    before: z.strictObject({ timeMs: z.number().int(), id: z.number().int() }).optional(),
  }),
  follow: z.strictObject({
    vm: vmId.optional(),
    sinceMs: z.number().int().nonnegative().optional(),
    afterId: z.number().int().nonnegative().optional(),
    limit: z.number().int().positive().max(10_000).optional(),
  }),
  poison: z.strictObject({
    vm: vmId.optional(),
    limit: z.number().int().positive().max(10_000).optional(),
    // A page's last row as the answer gave it: the store's hex text (`0x` and 16 digits).
    after: z
      .strictObject({ vm: vmId, gpa: z.string().regex(/^0x[0-9a-f]{1,16}$/, 'not a hex GPA') })
      .optional(),
  }),
  why: z.strictObject({
    vm: vmId,
    sinceMs: z.number().int().nonnegative().optional(),
    limit: z.number().int().positive().max(100).optional(),
  }),
  reload: z.strictObject({}),
} as const;

/** What a policy reload answers: live or refused, the version in force after it, the issues. */
export interface ReloadResult {
  ok: boolean;
  /** The version in force after the attempt. */
  version: string;
  issues: string[];
}

export type ControlCommand = keyof typeof CommandArgs;
export const CONTROL_COMMANDS = Object.keys(CommandArgs) as ControlCommand[];

/** Commands that change the daemon: only root or the daemon's own uid may send them. */
export const MUTATING_COMMANDS: ReadonlySet<ControlCommand> = new Set<ControlCommand>(['reload']);

export const ControlRequest = z.object({
  id: z.union([z.number(), z.string().max(128)]).optional(),
  cmd: z.string().min(1).max(64),
  args: z.record(z.string(), z.unknown()).optional(),
});
export type ControlRequest = z.infer<typeof ControlRequest>;

/**
 * Most sessions a `status` answer lists: status is made and encoded on the event loop that answers
 * vCPUs, so it holds at most this many (the first opened) and no labels, whatever the plugins
 * connected; `sessionCount` counts them all, and `seawall vms` pages through every connected VM.
 */
export const STATUS_MAX_SESSIONS = 100;

/**
 * A live session as `status` lists it; its labels only in an answer for one VM (`vm`), which lists
 * that VM's sessions alone (one, or two while a reconnect replaces the old).
 */
export interface SessionSummary {
  /** Session id (decimal), unique within this daemon run. */
  id: string;
  vm: string;
  /** Only when the status was asked for this VM. */
  labels?: Record<string, string>;
  vmmPid: number;
  vcpus: number;
  abi: string;
  openedAtMs: number;
}

export interface StatusResult {
  version: string;
  pid: number;
  startedAtMs: number;
  uptimeMs: number;
  policy: { version: string; reloads: number; failedReloads: number; lastReloadAtMs: number | null };
  /** Every live plugin session. */
  sessionCount: number;
  /**
   * The first STATUS_MAX_SESSIONS of them opened, oldest first; asked for one VM (`vm`), that VM's
   * sessions, with their labels.
   */
  sessions: SessionSummary[];
  /** The live sessions `sessions` leaves out: `sessionCount - sessions.length`. */
  sessionsOmitted: number;
  /** Since this daemon started. */
  events: { decided: number; replays: number };
  /**
   * The store's totals over what retention kept, and whether answered events are reaching it;
   * null when the daemon runs without a store.
   */
  store: (StoreTotals & { path: string; health: StoreHealth }) | null;
}

/** A VM as `vms` shows it: stored, connected now, or both. */
export type VmView = VmSummary;

export interface ControlResults {
  status: StatusResult;
  vms: VmView[];
  events: StoredEvent[];
  follow: FollowAnswer;
  poison: PoisonedPage[];
  why: WhyResult;
  reload: ReloadResult;
}

/**
 * Where the server gets its answers; the service builds one from its live parts
 * (see `serviceControlContext`). Methods may throw: the client gets SEAWALL_CONTROL_FAILED.
 */
/**
 * Reads may answer asynchronously: the daemon runs them off the event loop (store/reader-thread.ts).
 * The long lists may come already encoded by the reader thread (`EncodedJson`), written as they are.
 */
export interface ControlContext {
  status(args?: { vm?: string }): StatusResult | Promise<StatusResult>;
  vms(q: { limit?: number; after?: string }): VmView[] | EncodedJson | Promise<VmView[] | EncodedJson>;
  events(q: EventQuery): StoredEvent[] | EncodedJson | Promise<StoredEvent[] | EncodedJson>;
  /** The events stored after `afterId` (store/follow-query.ts): `seawall events --follow`. */
  follow(q: FollowQuery): FollowAnswer | EncodedJson | Promise<FollowAnswer | EncodedJson>;
  poison(q: {
    vm?: string;
    limit?: number;
    after?: PoisonCursor;
  }): PoisonedPage[] | EncodedJson | Promise<PoisonedPage[] | EncodedJson>;
  why(q: {
    vm: string;
    sinceMs?: number;
    limit?: number;
  }): WhyResult | EncodedJson | Promise<WhyResult | EncodedJson>;
  reload(): Promise<ReloadResult>;
}
