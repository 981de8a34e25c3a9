/**
 * The VERDICT a test's scripted daemon answers with: an action for `seq` and nothing else (no
 * flags, no grace, no ESR, zeroed vcpu-events bytes). Shared by the fake daemons of the plugin
 * tests in TypeScript and C.
 */
import { ACTION, type VerdictMsg } from '../../protocol/index.js';

export function plainVerdict(seq: number, action: number = ACTION.RESUME): VerdictMsg {
  return { type: 'verdict', seq, action, flags: 0, graceMs: 0, esr: 0n, vcpuEvents: new Uint8Array(64) };
}
