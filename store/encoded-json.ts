/**
 * A read's answer already encoded as JSON text, made on the reader thread: a query over ten
 * thousand rows is then neither cloned into the event loop's heap nor stringified there; the
 * control server writes the bytes as they are. `jsonText` is the one encoding of a control
 * answer (bigints as decimal strings), used by the reader thread and the control server alike.
 */
export class EncodedJson {
  constructor(readonly bytes: Uint8Array) {}
}

export function jsonText(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
}
