/**
 * Orders in which VMs a and b report before a third, c, comes to a bound of two, with the VM that
 * must go (the least recently seen) and the one that must stay: a VM seen again, once or in a storm
 * of its own, is the most recently seen. For the recency maps of policies/state.ts and
 * actions/poisoned-pages.ts alike.
 */
export const RECENCY_CASES: readonly { seen: readonly string[]; goes: string; stays: string }[] = [
  { seen: ['a', 'b', 'a'], goes: 'b', stays: 'a' },
  { seen: ['a', 'b', 'b', 'b', 'a', 'a'], goes: 'b', stays: 'a' },
  { seen: ['a', 'b', 'b', 'a', 'b'], goes: 'a', stays: 'b' },
];
