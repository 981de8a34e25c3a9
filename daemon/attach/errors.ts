/** Errors of the vCPU attach channel. Callers branch on `code`, never on message text. */
export type AttachErrorCode =
  /** A message that is not a valid attach record. */
  | 'SEAWALL_ATTACH_MALFORMED'
  /** The attach socket could not be created or served. */
  | 'SEAWALL_ATTACH_LISTEN'
  /** The daemon refused an attach; `status` says why (see wire.ts ATTACH_STATUS). */
  | 'SEAWALL_ATTACH_REFUSED'
  /** The attach connection closed or failed before a reply arrived. */
  | 'SEAWALL_ATTACH_CLOSED';

export class AttachError extends Error {
  override readonly name = 'AttachError';
  readonly code: AttachErrorCode;
  readonly detail: Readonly<Record<string, unknown>>;

  constructor(code: AttachErrorCode, message: string, detail: Record<string, unknown> = {}) {
    super(message);
    this.code = code;
    this.detail = detail;
  }
}

export function isAttachError(err: unknown, code?: AttachErrorCode): err is AttachError {
  return err instanceof AttachError && (code === undefined || err.code === code);
}
