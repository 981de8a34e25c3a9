/**
 * A migration hook that answers `accepted` only when the test releases it, oldest first: what
 * tests of the manager's slots and queue use to keep hooks running. `ran` lists the VMs it ran for.
 */
import type { HookRunner, MigrationPayload } from '../../actions/index.js';

export function heldHook(name: string) {
  const release: Array<() => void> = [];
  const ran: string[] = [];
  const hook: HookRunner = {
    name,
    kind: 'exec',
    run: (p: MigrationPayload) => {
      ran.push(p.vm.id);
      return new Promise((r) => release.push(() => r({ outcome: 'accepted', detail: null, attempts: 1 })));
    },
  };
  return { hook, release, ran };
}
