/** Sessions and a migrate decision made by hand, for the migration manager's tests. */
import type { SessionInfo } from '../../events/index.js';
import type { Decision } from '../../policies/index.js';
import { policyFrom, seaEvent } from '../policies/fixtures.js';
import { session } from '../store/records.js';

/** The decision of a policy named `name` (its version follows) that migrates through `orchestrator`. */
export const migrateDecision = (name = 'p') =>
  policyFrom(`version: 1
name: ${name}
rules:
  - name: move
    action: { type: migrate, hook: orchestrator, scope: vm, meanwhile: none, onFailure: { type: none } }
default:
  action: { type: none }
`).decide(seaEvent(), { abi: 'merged', ras: true, emulateAbort: false }) as Decision & { action: 'migrate' };

/** A session of `vm` whose plugin connection's peer (and VMM) is `pid`. */
export const sessionOf = (vm: string, id: bigint, pid: number): SessionInfo => ({
  ...session(vm, id),
  peer: { pid, uid: 0, gid: 0 },
  vmmPid: pid,
});
