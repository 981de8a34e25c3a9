/**
 * A peer's protocol violation. It closes that one connection (with an ERROR frame carrying
 * `wire`), is counted by `reason`, and never reaches the process.
 */
import { SeawallError } from '../errors/index.js';
import { WIRE_ERROR, type WireErrorName } from './constants.js';

export type ProtocolErrorCode = `SEAWALL_PROTO_${WireErrorName}`;

export class ProtocolError extends SeawallError<ProtocolErrorCode> {
  override readonly name = 'ProtocolError';
  /** The u16 carried on the wire. */
  readonly wire: number;
  /** Lower-case label for metrics (`oversize`, `unknown_type`, …). */
  readonly reason: string;

  constructor(kind: WireErrorName, message: string) {
    super(`SEAWALL_PROTO_${kind}`, message);
    this.wire = WIRE_ERROR[kind];
    this.reason = kind.toLowerCase();
  }
}

export function isProtocolError(err: unknown): err is ProtocolError {
  return err instanceof ProtocolError;
}
