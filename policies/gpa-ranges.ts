/**
 * GPA ranges compiled for matching: sorted, overlapping and touching ranges merged, packed as
 * `[from0, to0, from1, to1, …]` in a BigUint64Array. Matching is a binary search — O(log n) per
 * event, where a policy of 200,000 ranges used to cost a linear scan — and the packed form is one
 * transferable buffer, so a reload can build it off the event loop (daemon/policy-worker.ts) and
 * hand it over without copying.
 */

/** Sorts and merges `ranges` (inclusive bounds) into the packed form. */
export function packGpaRanges(ranges: readonly { from: bigint; to: bigint }[]): BigUint64Array {
  const sorted = [...ranges].sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0));
  const out: bigint[] = [];
  for (const r of sorted) {
    const last = out.length - 1;
    // Merge when overlapping or adjacent (to + 1 === from); inclusive bounds make adjacency exact.
    if (last > 0 && r.from <= (out[last] as bigint) + 1n) {
      if (r.to > (out[last] as bigint)) out[last] = r.to;
    } else out.push(r.from, r.to);
  }
  return BigUint64Array.from(out);
}

/** The last byte of an event's page: policies see GPAs as 4 KiB pages (policies/event-json.ts). */
export const PAGE_SPAN = 0xfffn;

/**
 * Whether one of the packed ranges overlaps the page of `gpa` (an event's GPA is already a page): a range
 * need not cover the page's first byte, so `{from: 0x80001234, to: 0x80001234}` matches the page
 * 0x80001000. The ranges are sorted and disjoint, so the search for an overlap stays binary.
 */
export function inPackedRanges(packed: BigUint64Array, gpa: bigint): boolean {
  const page = gpa - (gpa & PAGE_SPAN);
  const last = page + PAGE_SPAN;
  let lo = 0;
  let hi = packed.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (last < (packed[2 * mid] as bigint)) hi = mid - 1;
    else if (page > (packed[2 * mid + 1] as bigint)) lo = mid + 1;
    else return true;
  }
  return false;
}

/** `0xa..0xb, 0xc..0xd` for explain output, built only when asked. */
export function describePackedRanges(packed: BigUint64Array): string {
  const parts: string[] = [];
  for (let i = 0; i < packed.length; i += 2)
    parts.push(`0x${(packed[i] as bigint).toString(16)}..0x${(packed[i + 1] as bigint).toString(16)}`);
  return parts.join(', ');
}
