/**
 * docs/operations.md's control-protocol table matches control/commands.ts: it lists every command
 * the daemon accepts and no other, and each command's arguments by name — `name?` when optional —
 * so a script written from the table sends what the daemon takes.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { CONTROL_COMMANDS, CommandArgs } from '../../control/commands.js';

const doc = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
const lines = doc.split('\n');
const header = lines.findIndex((l) => /^\| `cmd` +\| `args` +\| result +\|$/.test(l));

test('the control protocol table lists every command with its arguments, and nothing else', () => {
  assert.ok(header >= 0, 'the table’s header');
  const rows = new Map<string, string>();
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith('|')) break;
    const [, cmd, args] = line.split('|').map((c) => c.trim());
    rows.set(/^`([a-z]+)`$/.exec(cmd ?? '')?.[1] ?? `unreadable: ${cmd}`, args ?? '');
  }
  assert.deepEqual([...rows.keys()].sort(), [...CONTROL_COMMANDS].sort());
  for (const cmd of CONTROL_COMMANDS) {
    const shape = CommandArgs[cmd].shape as Record<string, { isOptional(): boolean }>;
    const named = [...(rows.get(cmd) ?? '').matchAll(/(?:^|, )`([a-zA-Z]+)(\??)`/g)].map(
      (m) => `${m[1]}${m[2]}`,
    );
    const args = Object.entries(shape).map(([k, v]) => `${k}${v.isOptional() ? '?' : ''}`);
    assert.deepEqual(named.sort(), args.sort(), `${cmd}: its arguments`);
  }
});
