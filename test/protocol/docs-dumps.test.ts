/**
 * docs/protocol.md cannot drift from the code: every byte dump in it is re-encoded with the real
 * encoder and compared character for character, the hex in the doc decodes back to the example,
 * and the doc's code tables (message types, body sizes, errors, caps, actions) match constants.ts.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  ACTION,
  BODY_SIZE,
  CAP,
  DAEMON_ACCEPTS,
  encodeMessage,
  FrameParser,
  type Message,
  MSG,
  PLUGIN_ACCEPTS,
  WIRE_ERROR,
} from '../../protocol/index.js';
import { DOC_PATH, dumpBlock, EXAMPLES, rewriteDoc } from '../../scripts/protocol-dumps.js';

const doc = readFileSync(DOC_PATH, 'utf8');
const FIX = 'run `node --import tsx scripts/protocol-dumps.ts --write`';

function block(id: string): string {
  const m = new RegExp(`<!-- dump:${id} -->\\n([\\s\\S]*?)\\n<!-- /dump:${id} -->`).exec(doc);
  assert.ok(m, `docs/protocol.md has no dump '${id}'`);
  return m[1] as string;
}

/** The bytes column of a rendered dump: "OOOO  xx xx … " then the field column. */
function bytesOf(text: string): Buffer {
  const out: number[] = [];
  for (const line of text.split('\n')) {
    const m = /^[0-9a-f]{4} {2}((?:[0-9a-f]{2} ?){1,16})/.exec(line);
    if (!m) continue;
    for (const h of (m[1] as string).trim().split(' ')) out.push(Number.parseInt(h, 16));
  }
  return Buffer.from(out);
}

function decode(bytes: Buffer, minor: number): Message[] {
  const out: Message[] = [];
  const p = new FrameParser((m) => out.push(m), { accept: new Set([...DAEMON_ACCEPTS, ...PLUGIN_ACCEPTS]) });
  p.setMinor(minor);
  p.push(bytes);
  assert.equal(p.idle, true);
  return out;
}

test('every dump in docs/protocol.md is exactly what the encoder produces today', () => {
  for (const ex of EXAMPLES) assert.equal(block(ex.id), dumpBlock(ex), `dump '${ex.id}' is stale: ${FIX}`);
  assert.equal(rewriteDoc(doc), doc, `docs/protocol.md is stale: ${FIX}`);
});

test('the hex in each dump is the wire frame, and decodes back to the example', () => {
  for (const ex of EXAMPLES) {
    const bytes = bytesOf(block(ex.id));
    assert.deepEqual(bytes, encodeMessage(ex.message), `hex of '${ex.id}'`);
    assert.deepEqual(decode(bytes, ex.minor), [ex.message], `decoding '${ex.id}'`);
  }
});

test('the doc shows every message type and names no dump it does not have', () => {
  const shown = new Set(EXAMPLES.map((e) => encodeMessage(e.message).readUInt16LE(4)));
  for (const [name, code] of Object.entries(MSG)) assert.ok(shown.has(code), `no dump of ${name}`);
  const ids = [...doc.matchAll(/<!-- dump:([a-z0-9-]+) -->/g)].map((m) => m[1]);
  assert.deepEqual(
    ids,
    EXAMPLES.map((e) => e.id),
  );
});

/** A markdown table row whose first cells are `cells` (biome pads cells to align columns). */
function row(...cells: string[]): RegExp {
  const esc = cells.map((c) => c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^\\| ${esc.map((c) => `${c} *\\|`).join(' ')}(.*)$`, 'm');
}

test("the doc's code tables match protocol/constants.ts", () => {
  const fixed: Record<string, number> = BODY_SIZE;
  for (const [name, code] of Object.entries(MSG)) {
    const hex = `0x${code.toString(16).padStart(2, '0')}`;
    const m = row(hex, name).exec(doc);
    assert.ok(m, `§2 has no row '${hex} | ${name}'`);
    const size = (m[1] as string).split('|')[1]?.trim();
    if (name === 'APPLIED')
      assert.equal(
        size,
        `${BODY_SIZE.APPLIED}; ${BODY_SIZE.APPLIED} or ${BODY_SIZE.APPLIED_V11} in 1.1`,
        'APPLIED body size',
      );
    else if (fixed[name] !== undefined) assert.equal(size, String(fixed[name]), `${name} body size`);
    else assert.match(size ?? '', /^≥ \d+, variable$/, `${name} is variable`);
  }
  for (const [name, code] of Object.entries(WIRE_ERROR)) {
    assert.match(doc, row(String(code), `\`${name}\``), `§8 row for ${name}`);
  }
  for (const [name, bit] of Object.entries(CAP)) {
    const hex = `0x${bit.toString(16).padStart(2, '0')}`;
    assert.match(doc, row(`${Math.log2(bit)} (${hex})`, `\`${name}\``), `§6 row for ${name}`);
  }
  for (const [name, code] of Object.entries(ACTION)) {
    assert.ok(doc.includes(`**${name} (${code}).**`), `§5.1 paragraph for ${name}`);
  }
});

test('every file docs/protocol.md refers to is in the repository (§5.1 once named one that is not)', () => {
  const root = new URL('../../', import.meta.url);
  const docs = new URL('../../docs/', import.meta.url);
  const named = new Set([...doc.matchAll(/[A-Za-z0-9_./-]+\.(?:md|ts|c|h|rs)\b/g)].map((m) => m[0]));
  assert.ok(named.size > 5, 'the doc names files');
  for (const name of named) {
    const found = [new URL(name, docs), new URL(name, root)].some((u) => existsSync(u));
    assert.ok(
      found,
      `docs/protocol.md names '${name}', which is neither in docs/ nor at the repository root`,
    );
  }
});
