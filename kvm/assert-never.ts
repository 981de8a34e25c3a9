/**
 * Exhaustiveness guard for discriminated unions: a `switch` that forgets a member fails to
 * compile, and a value that slipped past the types (from the wire, from the kernel) throws
 * instead of being silently ignored.
 */
import { KvmError } from './errors.js';

export function assertNever(value: never, what = 'value'): never {
  throw new KvmError(
    'SEAWALL_KVM_UNHANDLED_VALUE',
    `unhandled ${what}: ${JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`,
    { what },
  );
}
