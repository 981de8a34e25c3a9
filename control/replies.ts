/**
 * The control socket's replies: one JSON line each, echoing the request's id when it is one the
 * schema allows. A result made on the reader thread (`EncodedJson`) is written as it is.
 */
import { EncodedJson, jsonText } from '../store/index.js';
import type { ControlError } from './errors.js';

export type Reply =
  | { id: unknown; ok: true; result: unknown }
  | { id: unknown; ok: false; error: { code: string; message: string } };

/** The byte that ends a request line and a reply. */
export const NL = 0x0a;

/**
 * The reply's bytes, in the pieces they are written in: a result made on the reader thread is
 * written as it is, between the reply's head and its end — never parsed, stringified or copied
 * into one buffer on the event loop.
 */
export function encode(reply: Reply): (string | Uint8Array)[] {
  if (reply.ok && reply.result instanceof EncodedJson)
    return [`{"id":${jsonText(reply.id ?? null)},"ok":true,"result":`, reply.result.bytes, '}\n'];
  return [line(reply)];
}

/** A reply that is not a reader thread's result (an error), as its one line. */
export function line(reply: Reply): string {
  return `${jsonText(reply)}\n`;
}

/**
 * The id a reply echoes: only one the schema allows (a number, a string of at most 128
 * characters), taken from a request that may have failed it. Anything else would be echoed as the
 * peer wrote it — a 40 KB array nested 20,000 deep overflows the stack of the stringify.
 */
export function echoedId(raw: unknown): number | string | null {
  const id = typeof raw === 'object' && raw !== null ? (raw as { id?: unknown }).id : undefined;
  return typeof id === 'number' || (typeof id === 'string' && id.length <= 128) ? id : null;
}

export function errorReply(id: unknown, err: ControlError): Reply {
  return { id, ok: false, error: { code: err.code, message: err.message } };
}
