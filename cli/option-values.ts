/**
 * Parsers for option and argument values, given to commander so a bad value is a usage error
 * (exit 2) naming the option, before any work starts. Durations use the one grammar policies use
 * (policies/ `parseDuration`: `500ms`, `10s`, `5m30s`, `2d`); addresses, counts and ESRs are
 * checked here rather than failing later with an errno.
 */
import { InvalidArgumentError } from 'commander';
import { MAX_VM_ID_LENGTH } from '../control/index.js';
import { isListenAddress } from '../daemon/index.js';
import { isKvmError, parseEsr } from '../kvm/index.js';
import { parseDuration } from '../policies/index.js';

/** Milliseconds for a duration in the policy grammar. */
export function durationValue(text: string): number {
  const ms = parseDuration(text);
  if (ms === null) throw new InvalidArgumentError('not a duration like 500ms, 10s, 5m, 1h, 2d or 5m30s');
  return ms;
}

/** A whole number within [min, max]. */
export function intValue(min: number, max: number = Number.MAX_SAFE_INTEGER): (text: string) => number {
  return (text) => {
    const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(
        max === Number.MAX_SAFE_INTEGER
          ? `not a whole number ≥ ${min}`
          : `not a whole number from ${min} to ${max}`,
      );
    }
    return n;
  };
}

/** `HOST:PORT` for a TCP listener, as the configuration file takes it (daemon/config.ts). */
export function listenValue(text: string): string {
  if (!isListenAddress(text)) {
    throw new InvalidArgumentError(
      /^\d+$/.test(text)
        ? `a bare port is ambiguous; write the address too, e.g. 127.0.0.1:${text}`
        : 'not HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464',
    );
  }
  return text;
}

/** A non-empty string (a VM id, a path). */
export function nonEmpty(text: string): string {
  if (text === '') throw new InvalidArgumentError('must not be empty');
  return text;
}

/** A VM id as the control socket takes it: not empty, at most MAX_VM_ID_LENGTH characters. */
export function vmIdValue(text: string): string {
  if (text === '') throw new InvalidArgumentError('must not be empty');
  if (text.length > MAX_VM_ID_LENGTH) {
    throw new InvalidArgumentError(`${text.length} characters long; a VM id has at most ${MAX_VM_ID_LENGTH}`);
  }
  return text;
}

/** An ESR or ISS: hex `0x…`, binary `0b…` or decimal, at most 64 bits. */
export function registerValue(text: string): bigint {
  try {
    return parseEsr(text);
  } catch (err) {
    if (isKvmError(err)) throw new InvalidArgumentError(err.message);
    throw err;
  }
}

/** Register values of a variadic argument, in the order given (commander hands each one over). */
export function registerValues(text: string, previous: bigint[] | undefined): bigint[] {
  const values = previous ?? [];
  values.push(registerValue(text));
  return values;
}

/** JSON text, parsed. */
export function jsonValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`not JSON: ${(err as Error).message}`);
  }
}

/** `key=value` (repeatable options collect into a record). */
export function keyValue(text: string, previous: Record<string, string> = {}): Record<string, string> {
  const i = text.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError('not key=value');
  return { ...previous, [text.slice(0, i)]: text.slice(i + 1) };
}

/** An ISO 8601 date and time that names no zone (no `Z`, no `±hh:mm`). */
const ZONELESS_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/;

/**
 * `--since`: a duration back from now (`90s`, `1h`, `7d`) or an ISO 8601 time; ms since the epoch.
 * A time without a zone is UTC, as a date alone is and as every time seawall prints is: read in
 * the local zone, the same text named another instant on a host not set to UTC. Stored times are
 * ms since the epoch, so a time before it is refused rather than sent.
 */
export function sinceValue(now: () => number): (text: string) => number {
  return (text) => {
    if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
      const t = Date.parse(ZONELESS_TIME.test(text) ? `${text}Z` : text);
      if (!Number.isFinite(t)) throw new InvalidArgumentError('not a valid ISO 8601 time');
      if (t < 0) {
        throw new InvalidArgumentError(
          'before 1970-01-01T00:00Z, the epoch: no event is older (give a later time, or leave --since out)',
        );
      }
      return t;
    }
    const ms = parseDuration(text);
    if (ms === null) {
      throw new InvalidArgumentError(
        'neither a duration (500ms, 10s, 5m, 1h, 2d) nor an ISO time (2024-05-01T12:00Z)',
      );
    }
    return Math.max(0, now() - ms);
  };
}
