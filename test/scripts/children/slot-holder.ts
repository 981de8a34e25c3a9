/**
 * For test/scripts/file-slots.test.ts: a stand-in test file. test/helpers/file-slots.ts is
 * preloaded, so by the time this runs it holds its slot; it says "running" and keeps the slot
 * until its stdin closes.
 */
process.stdout.write('running\n');
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
