/**
 * A peer's protocol violation. It closes that one connection (with an ERROR frame carrying
 * `wire`), is counted by `reason`, and never reaches the process.
 */
import { SeawallError } from '../errors/index.js';
import { PROTOCOL_MINOR, PROTOCOL_VERSION, WIRE_ERROR, type WireErrorName } from './constants.js';
import type { ErrorMsg, RejectMsg } from './messages.js';

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

/**
 * The frame that answers a violation before the connection closes: REJECT for a refused HELLO
 * (VERSION naming the highest version spoken here, so a plugin can reconnect with it), ERROR for
 * anything else.
 */
export function answerTo(err: ProtocolError): RejectMsg | ErrorMsg {
  switch (err.code) {
    case 'SEAWALL_PROTO_VERSION':
      return {
        type: 'reject',
        code: err.wire,
        message: err.message,
        supported: { major: PROTOCOL_VERSION, minor: PROTOCOL_MINOR },
      };
    case 'SEAWALL_PROTO_VM_IN_USE':
    case 'SEAWALL_PROTO_UNAUTHORIZED':
      return { type: 'reject', code: err.wire, message: err.message };
    default:
      return { type: 'error', code: err.wire, message: err.message };
  }
}
