/**
 * The checks of what callers pass to SeawallMetrics: recorded numbers and constructor options. A
 * failed check is a caller bug, raised at the call (never at scrape time).
 */
import { MetricsError } from './errors.js';

/** Throws SEAWALL_METRICS_INVALID_VALUE unless `value` is a count (a non-negative safe integer). */
export function assertCount(name: string, value: number): void {
  if (!(Number.isSafeInteger(value) && value >= 0)) invalidValue(name, value);
}

export function invalidValue(name: string, value: unknown): never {
  throw new MetricsError('SEAWALL_METRICS_INVALID_VALUE', `${name} must be a non-negative finite number`, {
    name,
    value,
  });
}

export function invalidOption(name: string, value: unknown): never {
  const message = `option ${name} is out of range: ${String(value)}`;
  throw new MetricsError('SEAWALL_METRICS_INVALID_OPTION', message, { option: name, value });
}
