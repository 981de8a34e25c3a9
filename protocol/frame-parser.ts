/**
 * The frame parser: an explicit state machine fed with socket chunks. It waits for a whole header,
 * checks the type (known, and allowed in this direction) and the length (within the limit, exact
 * for fixed-size bodies) *before* buffering the body, then hands out bodies sliced without copying
 * when a frame sits inside one chunk. Any violation throws a ProtocolError and the parser is dead.
 */
import { HEADER_SIZE, LIMITS, MESSAGE_NAMES, MSG } from './constants.js';
import { type BodyRule, bodyRules, decodeBody } from './decode.js';
import { ProtocolError } from './errors.js';
import type { Message } from './messages.js';

export interface FrameParserOptions {
  /** Types this side accepts; anything else is UNEXPECTED_TYPE (known) or UNKNOWN_TYPE. */
  accept: ReadonlySet<number>;
  maxBody?: number;
}

export class FrameParser {
  readonly #accept: ReadonlySet<number>;
  readonly #maxBody: number;
  readonly #onMessage: (m: Message) => void;
  /**
   * A partial frame is copied into buffers of exactly the size it needs — the header, then the
   * body its header declared — never kept as the peer's chunks: a peer that drips one byte per
   * write would otherwise make every byte cost a Buffer object (~60 bytes of heap each).
   */
  readonly #header = Buffer.alloc(HEADER_SIZE);
  #body: Buffer | null = null;
  /** Bytes of the current partial header or body already copied. */
  #filled = 0;
  /** Body length and type of the frame whose header has been read; -1 while waiting for a header. */
  #need = -1;
  #type = 0;
  #dead = false;
  /** The session's minor version: body sizes and field checks follow it (0 until HELLO says otherwise). */
  #minor = 0;
  #rules: ReadonlyMap<number, BodyRule> = bodyRules(0);
  /** Set by helloDone(): any further HELLO is DUPLICATE_HELLO, whatever its body. */
  #helloDone = false;
  /** Set by stop(): the push under way returns at the next frame boundary. */
  #stopped = false;
  /** Bytes behind the frame boundary where the parser stopped, parsed by resume(). */
  #rest: Buffer | null = null;

  constructor(onMessage: (m: Message) => void, opts: FrameParserOptions) {
    this.#onMessage = onMessage;
    this.#accept = opts.accept;
    this.#maxBody = opts.maxBody ?? LIMITS.maxBody;
  }

  /** Bytes held for an incomplete frame (bounded by HEADER_SIZE + maxBody). */
  get buffered(): number {
    return this.#need < 0 ? this.#filled : HEADER_SIZE + this.#filled;
  }

  /**
   * Switches to the rules of the minor version a session negotiated; frames already parsed are
   * not affected. The daemon calls it when it admits a HELLO, before the next frame is read.
   */
  setMinor(minor: number): void {
    this.#minor = minor;
    this.#rules = bodyRules(minor);
  }

  /**
   * The session's HELLO was admitted: a later HELLO is DUPLICATE_HELLO on its header alone, never
   * decoded, so its version or layout cannot turn the answer into REJECT VERSION or a field error.
   */
  helloDone(): void {
    this.#helloDone = true;
  }

  /** True when no partial frame is pending. */
  get idle(): boolean {
    return this.#need < 0 && this.#filled === 0;
  }

  /**
   * Stops delivering messages at the next frame boundary (called from the message callback, the
   * message that called it is the last one): the bytes behind it, and any pushed meanwhile, wait
   * for resume(). A reader that holds a peer back by pausing its socket holds back the frames of
   * the chunk already read as well.
   */
  stop(): void {
    this.#stopped = true;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Bytes received and not parsed because the parser was stopped. */
  get waiting(): number {
    return this.#rest?.length ?? 0;
  }

  /** Parses what waited since stop(); it may stop again on the way. Throws as push() does. */
  resume(): void {
    this.#stopped = false;
    const rest = this.#rest;
    this.#rest = null;
    if (rest) this.push(rest);
  }

  push(chunk: Buffer): void {
    if (this.#dead) throw new ProtocolError('BAD_FRAME', 'parser already failed');
    if (this.#stopped) {
      this.#rest = this.#rest ? Buffer.concat([this.#rest, chunk]) : chunk;
      return;
    }
    try {
      this.#push(chunk);
    } catch (err) {
      this.#dead = true;
      this.#body = null;
      this.#rest = null;
      this.#filled = 0;
      throw err;
    }
  }

  #push(chunk: Buffer): void {
    let o = 0;
    for (;;) {
      if (this.#need < 0) {
        if (o === chunk.length) return;
        if (this.#filled === 0 && chunk.length - o >= HEADER_SIZE) {
          this.#checkHeader(chunk.readUInt32LE(o), chunk.readUInt16LE(o + 4), chunk.readUInt16LE(o + 6));
          o += HEADER_SIZE;
        } else {
          const k = Math.min(HEADER_SIZE - this.#filled, chunk.length - o);
          chunk.copy(this.#header, this.#filled, o, o + k);
          this.#filled += k;
          o += k;
          if (this.#filled < HEADER_SIZE) return;
          this.#filled = 0;
          const h = this.#header;
          this.#checkHeader(h.readUInt32LE(0), h.readUInt16LE(4), h.readUInt16LE(6));
        }
      }
      let body: Buffer;
      if (o === chunk.length && this.#need > 0) return;
      if (this.#filled === 0 && chunk.length - o >= this.#need) {
        // The whole body is in this chunk: a slice, no copy.
        body = chunk.subarray(o, o + this.#need);
        o += this.#need;
      } else {
        const k = Math.min(this.#need - this.#filled, chunk.length - o);
        this.#reserve(this.#filled + k);
        chunk.copy(this.#body as Buffer, this.#filled, o, o + k);
        this.#filled += k;
        o += k;
        if (this.#filled < this.#need) return;
        body = (this.#body as Buffer).subarray(0, this.#need);
        this.#body = null;
        this.#filled = 0;
      }
      const type = this.#type;
      this.#need = -1;
      this.#onMessage(decodeBody(type, body, this.#minor));
      if (this.#stopped) {
        if (o < chunk.length) this.#rest = chunk.subarray(o);
        return;
      }
    }
  }

  /**
   * Room for `n` body bytes, grown by doubling from 256 up to the declared length: a peer that
   * declares a 16 KiB body and then drips it costs about what it has sent, not the declared size.
   */
  #reserve(n: number): void {
    const have = this.#body?.length ?? 0;
    if (n <= have) return;
    const next = Buffer.allocUnsafe(Math.min(this.#need, Math.max(256, have * 2, n)));
    if (this.#body) this.#body.copy(next, 0, 0, this.#filled);
    this.#body = next;
  }

  #checkHeader(length: number, type: number, reserved: number): void {
    const name = MESSAGE_NAMES.get(type);
    if (name === undefined)
      throw new ProtocolError('UNKNOWN_TYPE', `unknown message type 0x${type.toString(16)}`);
    if (reserved !== 0)
      throw new ProtocolError('BAD_FRAME', `header reserved field is 0x${reserved.toString(16)}, not 0`);
    if (type === MSG.HELLO && this.#helloDone)
      throw new ProtocolError('DUPLICATE_HELLO', 'HELLO sent twice on one connection');
    if (length > this.#maxBody) {
      throw new ProtocolError(
        'OVERSIZE',
        `${name} body of ${length} bytes exceeds the ${this.#maxBody}-byte limit`,
      );
    }
    if (!this.#accept.has(type))
      throw new ProtocolError('UNEXPECTED_TYPE', `${name} is not sent in this direction`);
    const rule = this.#rules.get(type);
    if (rule?.exact !== undefined && length !== rule.exact) {
      throw new ProtocolError('BAD_FRAME', `${name} body must be ${rule.exact} bytes, got ${length}`);
    }
    if (rule?.min !== undefined && length < rule.min) {
      throw new ProtocolError('BAD_FRAME', `${name} body must be at least ${rule.min} bytes, got ${length}`);
    }
    if (rule?.max !== undefined && length > rule.max) {
      throw new ProtocolError('BAD_FRAME', `${name} body must be at most ${rule.max} bytes, got ${length}`);
    }
    this.#need = length;
    this.#type = type;
  }
}
