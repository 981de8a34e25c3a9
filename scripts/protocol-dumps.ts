/**
 * The annotated byte dumps in docs/protocol.md, produced by the real encoder so they cannot be
 * wrong. Each example (scripts/protocol-vectors.ts) is a Message; its bytes come from protocol/'s encodeMessage and its
 * annotation from a field walk over those bytes. test/protocol/docs-dumps.test.ts re-renders every
 * example and compares it with the doc, so the doc cannot drift from the code either.
 *
 *   node --import tsx scripts/protocol-dumps.ts           print every dump
 *   node --import tsx scripts/protocol-dumps.ts --write   rewrite the marked blocks in docs/protocol.md
 *
 * Longer than 350 lines: one annotated example per message of docs/protocol.md, kept together so
 * the doc's dumps have one generator.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import {
  ACTION,
  APPLIED_SOURCE,
  CAP,
  EVENT_FLAG,
  encodeMessage,
  GOODBYE_REASON,
  HEADER_SIZE,
  MESSAGE_NAMES,
  MSG,
  VERDICT_FLAG,
  WIRE_ERROR_NAMES,
} from '../protocol/index.js';
import { type DumpExample, EXAMPLES } from './protocol-vectors.js';

export { type DumpExample, EXAMPLES } from './protocol-vectors.js';

export const DOC_PATH = new URL('../docs/protocol.md', import.meta.url);

type Kind = 'u8' | 'u16' | 'u32' | 'u64' | 'i32' | 'utf8' | 'bytes';
interface Field {
  size: number;
  name: string;
  kind: Kind;
  /** Rendering of the value; the default prints integers in decimal. */
  show?: (v: bigint) => string;
}

const hex = (v: bigint) => `0x${v.toString(16)}`;
const named =
  (names: ReadonlyMap<number, string> | Record<string, number>, asHex = true) =>
  (v: bigint) => {
    const map =
      names instanceof Map ? names : new Map(Object.entries(names).map(([k, n]) => [n as number, k]));
    const name = map.get(Number(v));
    return `${asHex ? hex(v) : v.toString()}${name ? ` ${name}` : ''}`;
  };
const bits = (table: Record<string, number>) => (v: bigint) => {
  const set = Object.entries(table)
    .filter(([, b]) => (Number(v) & b) !== 0)
    .map(([k]) => k);
  return set.length ? `${hex(v)} ${set.join('|')}` : hex(v);
};
const sentinel = (none: bigint, word: string, show: (v: bigint) => string) => (v: bigint) =>
  v === none ? `${hex(v)} (${word})` : show(v);

const u32le = (b: Buffer, o: number) => b.readUInt32LE(o);
const u16le = (b: Buffer, o: number) => b.readUInt16LE(o);

function eventPrefix(b: Buffer): Field[] {
  const replay = (b.readUInt16LE(16) & EVENT_FLAG.REPLAY) !== 0;
  return [
    { size: 4, name: 'seq', kind: 'u32' },
    { size: 4, name: 'vcpu', kind: 'u32', show: sentinel(0xffffffffn, 'NO_VCPU', (v) => v.toString()) },
    { size: 8, name: 'time_ns', kind: 'u64' },
    { size: 2, name: 'flags', kind: 'u16', show: bits(EVENT_FLAG) },
    { size: 1, name: 'fallback_action', kind: 'u8', ...(replay ? { show: named(ACTION, false) } : {}) },
    { size: 5, name: 'reserved', kind: 'bytes' },
  ];
}

function textBody(b: Buffer): Field[] {
  return [
    { size: 2, name: 'code', kind: 'u16', show: named(WIRE_ERROR_NAMES, false) },
    { size: 2, name: 'text_len', kind: 'u16' },
    { size: u16le(b, 2), name: 'text', kind: 'utf8' },
  ];
}

/** The body's fields, walked over the actual bytes (variable-length bodies read their own lengths). */
function bodyFields(type: number, b: Buffer): Field[] {
  switch (type) {
    case MSG.HELLO: {
      const fields: Field[] = [
        { size: 2, name: 'version', kind: 'u16' },
        { size: 2, name: 'minor', kind: 'u16' },
        { size: 4, name: 'caps', kind: 'u32', show: bits(CAP) },
        { size: 4, name: 'vmm_pid', kind: 'u32' },
        { size: 4, name: 'vcpu_count', kind: 'u32' },
        { size: 4, name: 'ext_abt_esr_cap', kind: 'u32' },
        { size: 2, name: 'vm_id_len', kind: 'u16' },
        { size: 2, name: 'label_count', kind: 'u16' },
        { size: u16le(b, 20), name: 'vm_id', kind: 'utf8' },
      ];
      let o = 24 + u16le(b, 20);
      for (let i = 0; i < u16le(b, 22); i++) {
        const kl = u16le(b, o);
        const vl = u16le(b, o + 2);
        fields.push(
          { size: 2, name: `label[${i}].key_len`, kind: 'u16' },
          { size: 2, name: `label[${i}].value_len`, kind: 'u16' },
          { size: kl, name: `label[${i}].key`, kind: 'utf8' },
          { size: vl, name: `label[${i}].value`, kind: 'utf8' },
        );
        o += 4 + kl + vl;
      }
      return fields;
    }
    case MSG.WELCOME:
      return [
        { size: 2, name: 'version', kind: 'u16' },
        { size: 2, name: 'minor', kind: 'u16' },
        { size: 4, name: 'max_in_flight', kind: 'u32' },
        { size: 8, name: 'session_id', kind: 'u64' },
        { size: 4, name: 'heartbeat_ms', kind: 'u32' },
        { size: 4, name: b.readUInt16LE(2) >= 1 ? 'max_body' : 'reserved', kind: 'u32' },
      ];
    case MSG.REJECT: {
      const fields = textBody(b);
      if (b.length === 4 + u16le(b, 2) + 4)
        fields.push(
          { size: 2, name: 'supported.major', kind: 'u16' },
          { size: 2, name: 'supported.minor', kind: 'u16' },
        );
      return fields;
    }
    case MSG.ERROR:
      return textBody(b);
    case MSG.EVENT_SEA:
      return [
        ...eventPrefix(b),
        { size: 8, name: 'kvm_flags', kind: 'u64', show: bits({ GPA_VALID: 1 }) },
        { size: 8, name: 'esr', kind: 'u64', show: hex },
        { size: 8, name: 'gva', kind: 'u64', show: hex },
        { size: 8, name: 'gpa', kind: 'u64', show: hex },
      ];
    case MSG.EVENT_NISV:
      return [
        ...eventPrefix(b),
        { size: 8, name: 'esr_iss', kind: 'u64', show: hex },
        { size: 8, name: 'fault_ipa', kind: 'u64', show: hex },
      ];
    case MSG.EVENT_MMIO:
      return [
        ...eventPrefix(b),
        { size: 8, name: 'phys_addr', kind: 'u64', show: hex },
        { size: 8, name: 'data', kind: 'bytes' },
        { size: 4, name: 'len', kind: 'u32' },
        { size: 1, name: 'is_write', kind: 'u8' },
        { size: 3, name: 'reserved', kind: 'bytes' },
      ];
    case MSG.EVENT_SIGBUS:
      return [
        ...eventPrefix(b),
        { size: 2, name: 'si_code', kind: 'u16', show: named({ BUS_MCEERR_AR: 4, BUS_MCEERR_AO: 5 }, false) },
        { size: 2, name: 'addr_lsb', kind: 'u16' },
        { size: 4, name: 'reserved', kind: 'u32' },
        { size: 8, name: 'gpa', kind: 'u64', show: sentinel(0xffffffffffffffffn, 'NO_GPA', hex) },
      ];
    case MSG.VERDICT:
      return [
        { size: 4, name: 'seq', kind: 'u32' },
        { size: 1, name: 'action', kind: 'u8', show: named(ACTION, false) },
        { size: 1, name: 'flags', kind: 'u8', show: bits(VERDICT_FLAG) },
        { size: 2, name: 'reserved', kind: 'u16' },
        { size: 4, name: 'grace_ms', kind: 'u32' },
        { size: 4, name: 'reserved', kind: 'u32' },
        { size: 8, name: 'esr', kind: 'u64', show: hex },
        { size: 64, name: 'vcpu_events', kind: 'bytes' },
      ];
    case MSG.APPLIED:
      return [
        { size: 4, name: 'seq', kind: 'u32' },
        { size: 4, name: 'result', kind: 'i32' },
        ...(b.length === 16
          ? ([
              { size: 1, name: 'action', kind: 'u8', show: named(ACTION, false) },
              { size: 1, name: 'source', kind: 'u8', show: named(APPLIED_SOURCE, false) },
              { size: 6, name: 'reserved', kind: 'bytes' },
            ] as Field[])
          : []),
      ];
    case MSG.HEARTBEAT:
      return [{ size: 8, name: 'nonce', kind: 'u64', show: hex }];
    case MSG.GOODBYE:
      return [
        { size: 2, name: 'reason', kind: 'u16', show: named(GOODBYE_REASON, false) },
        { size: 2, name: 'reserved', kind: 'u16' },
      ];
    default:
      throw new Error(`no layout for message type 0x${type.toString(16)}`);
  }
}

function value(f: Field, b: Buffer, o: number): string {
  switch (f.kind) {
    case 'u8':
      return (f.show ?? String)(BigInt(b.readUInt8(o)));
    case 'u16':
      return (f.show ?? String)(BigInt(b.readUInt16LE(o)));
    case 'u32':
      return (f.show ?? String)(BigInt(b.readUInt32LE(o)));
    case 'i32':
      return String(b.readInt32LE(o));
    case 'u64':
      return (f.show ?? String)(b.readBigUInt64LE(o));
    case 'utf8':
      return JSON.stringify(b.toString('utf8', o, o + f.size));
    case 'bytes':
      return '';
  }
}

const BYTES_PER_LINE = 16;
const BYTES_COL = BYTES_PER_LINE * 3;

function hexRow(b: Buffer, start: number, end: number): string {
  const out: string[] = [];
  for (let i = start; i < end; i++) out.push((b[i] as number).toString(16).padStart(2, '0'));
  return out.join(' ');
}

/** One frame as annotated hex: offset, bytes (16 a line), field name and value. */
export function renderDump(ex: DumpExample): string {
  const frame = encodeMessage(ex.message);
  const type = u16le(frame, 4);
  const body = frame.subarray(HEADER_SIZE);
  const lines = [
    `${MESSAGE_NAMES.get(type)} (type 0x${type.toString(16).padStart(2, '0')}), ${ex.direction}: ` +
      `8-byte header + ${u32le(frame, 0)}-byte body`,
    'off   bytes' + ' '.repeat(BYTES_COL - 5) + 'field',
  ];
  const header: Field[] = [
    { size: 4, name: 'header.body_length', kind: 'u32' },
    { size: 2, name: 'header.type', kind: 'u16', show: named(MESSAGE_NAMES) },
    { size: 2, name: 'header.reserved', kind: 'u16' },
  ];
  const fields = [...header, ...bodyFields(type, body)];
  let o = 0;
  for (const f of fields) {
    const name = o < HEADER_SIZE ? f.name : `[+${o - HEADER_SIZE}] ${f.name}`;
    if (f.size === 0) {
      lines.push(`${o.toString(16).padStart(4, '0')}  ${'(empty)'.padEnd(BYTES_COL)}${name} = ""`);
      continue;
    }
    for (let start = o; start < o + f.size; start += BYTES_PER_LINE) {
      const end = Math.min(start + BYTES_PER_LINE, o + f.size);
      const label = start === o ? `${name}${valueSuffix(f, frame, o)}` : '';
      lines.push(
        `${start.toString(16).padStart(4, '0')}  ${hexRow(frame, start, end).padEnd(BYTES_COL)}${label}`,
      );
    }
    o += f.size;
  }
  if (o !== frame.length) throw new Error(`${ex.id}: layout covers ${o} of ${frame.length} bytes`);
  return lines.map((l) => l.trimEnd()).join('\n');
}

function valueSuffix(f: Field, frame: Buffer, o: number): string {
  const v = value(f, frame, o);
  return v === '' ? '' : ` = ${v}`;
}

/** The text between a dump's markers in the doc (the fenced block). */
export function dumpBlock(ex: DumpExample): string {
  return ['```text', renderDump(ex), '```'].join('\n');
}

const MARKER = /<!-- dump:([a-z0-9-]+) -->\n[\s\S]*?<!-- \/dump:\1 -->/g;

/** The doc with every marked block replaced by its current rendering. */
export function rewriteDoc(doc: string): string {
  const byId = new Map(EXAMPLES.map((e) => [e.id, e]));
  return doc.replace(MARKER, (_all, id: string) => {
    const ex = byId.get(id);
    if (!ex) throw new Error(`docs/protocol.md names an unknown dump '${id}'`);
    return `<!-- dump:${id} -->\n${dumpBlock(ex)}\n<!-- /dump:${id} -->`;
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv.includes('--write')) {
    const doc = readFileSync(DOC_PATH, 'utf8');
    writeFileSync(DOC_PATH, rewriteDoc(doc));
  } else {
    for (const ex of EXAMPLES) process.stdout.write(`<!-- dump:${ex.id} -->\n${dumpBlock(ex)}\n\n`);
  }
}
