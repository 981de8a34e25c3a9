import type { EventRecord } from './bus.js';

/**
 * Whether an event marks its guest page as poisoned: SEA and SIGBUS memory errors with a known GPA.
 * NISV and MMIO exits carry a GPA too, but of an access to a device or an unmapped address, not of
 * bad memory. One rule for the store's poisoned_pages table, the `seawall_poisoned_pages` gauge and
 * the pages a migration hook is sent.
 */
export function poisonsPage(r: EventRecord): boolean {
  return r.event.gpa !== null && (r.event.kind === 'sea' || r.event.kind === 'sigbus');
}
