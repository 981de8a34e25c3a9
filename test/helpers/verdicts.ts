/**
 * The VERDICT a test's scripted daemon answers with: an action for `seq` and nothing else (no
 * flags, no grace, no ESR, zeroed vcpu-events bytes), and the WELCOME it greets with. Shared by
 * the fake daemons of the plugin tests in TypeScript and C.
 */
import {
  ACTION,
  type HelloMsg,
  PROTOCOL_VERSION,
  type VerdictMsg,
  type WelcomeMsg,
} from '../../protocol/index.js';

export function plainVerdict(seq: number, action: number = ACTION.RESUME): VerdictMsg {
  return { type: 'verdict', seq, action, flags: 0, graceMs: 0, esr: 0n, vcpuEvents: new Uint8Array(64) };
}

/** The WELCOME a test's scripted daemon answers `hello` with: its minor, 64 in flight, heartbeats every minute. */
export function plainWelcome(hello: HelloMsg, sessionId = 1n): WelcomeMsg {
  return {
    type: 'welcome',
    version: PROTOCOL_VERSION,
    minor: hello.minor ?? 0,
    maxInFlight: 64,
    sessionId,
    heartbeatMs: 60_000,
  };
}
