/**
 * The frames the C load generator (bench/c/client.c) sends, written by the project's own encoder
 * so the C side repeats no message layout: per connection a HELLO (or none, for echo servers),
 * whose vmmPid the client replaces with its own pid (the process that connects), and the sample SEA event (vmm/sample-events.ts) whose seq the client rewrites for every event
 * it sends; with `applied`, also an APPLIED (result 0) that it sends for each verdict, as a
 * plugin reports what it did.
 */
import { writeFileSync } from 'node:fs';
import { BODY_SIZE, CAP, encodeMessage, HEADER_SIZE, MSG } from '../protocol/index.js';
import { seaFrame } from '../vmm/index.js';

/** The frame type that answers an event: VERDICT from the daemon, the event itself from an echo. */
export const REPLY_TYPE = { daemon: MSG.VERDICT, echo: MSG.EVENT_SEA } as const;
/** The body length of every such reply: the client refuses any other. */
export const REPLY_LEN = { daemon: BODY_SIZE.VERDICT, echo: BODY_SIZE.EVENT_SEA } as const;

/** HELLO's vmmPid as written; the client puts its own pid at this body offset before sending. */
const PID_PLACEHOLDER = 0x5eaa11;
const PID_OFFSET = 8;

function blob(bytes: Buffer | null): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32LE(bytes?.length ?? 0);
  return bytes ? Buffer.concat([len, bytes]) : len;
}

/**
 * Writes the frames file for `conns` connections (VM `bench-<first + i>`, `vcpus` vCPUs each);
 * with `applied`, each verdict is followed by an APPLIED.
 */
export function writeFrames(
  path: string,
  conns: number,
  handshake: boolean,
  vcpus = 8,
  applied = false,
  first = 0,
): void {
  const parts: Buffer[] = [];
  const count = Buffer.alloc(4);
  count.writeUInt32LE(conns);
  parts.push(count);
  for (let i = 0; i < conns; i++) {
    const hello = handshake
      ? encodeMessage({
          type: 'hello',
          version: 1,
          caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS,
          vmmPid: PID_PLACEHOLDER,
          vcpuCount: vcpus,
          extAbtEsrCap: 0,
          vmId: `bench-${first + i}`,
          labels: { tier: 'bench' },
        })
      : null;
    if (hello && hello.readUInt32LE(HEADER_SIZE + PID_OFFSET) !== PID_PLACEHOLDER)
      throw new Error(`the client writes its pid at HELLO's body offset ${PID_OFFSET}`);
    const event = seaFrame(1, { vcpu: i % vcpus, gpa: BigInt((i * 97) % 4096) << 12n });
    if (event.readUInt32LE(HEADER_SIZE) !== 1) throw new Error('the client rewrites seq at body offset 0');
    const done = applied ? encodeMessage({ type: 'applied', seq: 1, result: 0 }) : null;
    if (done && done.readUInt32LE(HEADER_SIZE) !== 1)
      throw new Error('the client rewrites seq at body offset 0');
    parts.push(blob(hello), blob(event), blob(done));
  }
  writeFileSync(path, Buffer.concat(parts));
}
