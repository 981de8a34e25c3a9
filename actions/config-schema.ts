/**
 * The `actions:` section of the daemon config (daemon/config.ts adds it to ConfigSchema): named
 * migration hooks and the bounds of the action layer.
 */
import * as z from 'zod';
import { MAX_TIMER_MS } from '../policies/index.js';
import { ExecHook } from './exec-hook.js';
import type { HookRunner } from './hook-types.js';
import { HttpHook } from './http-hook.js';

/** Milliseconds a timer waits: Node runs a longer one after 1 ms (a hook killed at once). */
const timerMs = (fallback: number) =>
  z
    .number()
    .int()
    .positive()
    .max(MAX_TIMER_MS, `at most ${MAX_TIMER_MS} ms (about 24 days): no timer waits longer`)
    .default(fallback);

const hookName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'letters, digits, _ . -');

/** A header name is an RFC 9110 token; anything else makes every request of the hook fail. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** RFC 9110 field-value characters: tab, printable ASCII, obs-text; never CR, LF or NUL. */
const headerValue = z
  .string()
  .regex(/^[\t\x20-\x7e\x80-\xff]*$/, 'a header value: no CR, LF, NUL or other control character');
// Checked here rather than as the record's key schema, whose failure reads only "Invalid key".
const headers = z.record(z.string(), headerValue).superRefine((h, ctx) => {
  for (const name of Object.keys(h)) {
    if (!HEADER_NAME.test(name))
      ctx.addIssue({
        code: 'custom',
        path: [name],
        message: `${JSON.stringify(name)} is not a header name: letters, digits and !#$%&'*+-.^_\`|~`,
      });
  }
});

const HttpHookSchema = z.strictObject({
  type: z.literal('http'),
  url: z.url({ protocol: /^https?$/ }),
  timeoutMs: timerMs(10_000),
  retries: z.number().int().min(0).max(10).default(3),
  backoffMs: timerMs(500),
  maxBackoffMs: timerMs(10_000),
  headers: headers.default({}),
});

const ExecHookSchema = z.strictObject({
  type: z.literal('exec'),
  /** Program and arguments; no shell is involved. */
  argv: z.array(z.string().min(1)).min(1),
  timeoutMs: timerMs(60_000),
  env: z.record(z.string(), z.string()).default({}),
});

export const HookSchema = z.discriminatedUnion('type', [HttpHookSchema, ExecHookSchema]);

export const ActionsConfigSchema = z
  .strictObject({
    /** Migration hooks by the name policies use (`action.hook`). */
    hooks: z.record(hookName, HookSchema).default({}),
    /** Hooks running at once across the host. */
    maxHooksInFlight: z.number().int().positive().default(8),
    /** Migrations waiting for a slot; past it a trigger is dropped and counted. */
    maxHooksQueued: z.number().int().min(0).default(256),
    /** Poisoned pages remembered per VM for migration payloads. */
    poisonedPagesPerVm: z.number().int().positive().default(1024),
    /** VMs whose poisoned pages are remembered (least recent forgotten first). */
    poisonedPagesVms: z.number().int().positive().default(4096),
    /** Host name in migration payloads; default os.hostname(). */
    hostName: z.string().min(1).optional(),
    kill: z
      .strictObject({
        /** false: record kills and their would-be enforcement, never send SIGKILL. */
        enforce: z.boolean().default(true),
      })
      .prefault({}),
  })
  .prefault({});
export type ActionsConfig = z.infer<typeof ActionsConfigSchema>;

/** Builds the runners for the configured hooks. */
export function buildHooks(cfg: ActionsConfig): Map<string, HookRunner> {
  const hooks = new Map<string, HookRunner>();
  for (const [name, spec] of Object.entries(cfg.hooks)) {
    hooks.set(name, spec.type === 'http' ? new HttpHook(name, spec) : new ExecHook(name, spec));
  }
  return hooks;
}
