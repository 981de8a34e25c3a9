/**
 * The `vm` label value for a VM id. Any byte string up to 128 bytes is a legal VM id on the wire
 * (docs/protocol.md), but a Prometheus label of seawall's is 1–128 printable characters
 * (metrics/label-values.ts): an id with a control character would be refused by the metrics
 * layer, and that refusal used to cost the whole batch its counts. So the id is escaped
 * (events/printable.ts: one escaped form per id, so no two VMs share a series), and an escaped id
 * longer than the bound keeps its first characters plus a digest of the whole id — and so does an
 * id that already has that shape, which a VM could otherwise claim to share another's series.
 */
import { createHash } from 'node:crypto';
import { printable } from '../../events/index.js';
import { MAX_LABEL_VALUE_LENGTH } from '../../metrics/index.js';

const DIGEST_CHARS = 16;
/** The shape of a shortened label: the bound's length, ending in `~` and the digest. */
const SHORTENED = new RegExp(
  `^.{${MAX_LABEL_VALUE_LENGTH - DIGEST_CHARS - 1}}~[0-9a-f]{${DIGEST_CHARS}}$`,
  's',
);

export function vmLabel(vm: string): string {
  const text = printable(vm);
  if (text.length <= MAX_LABEL_VALUE_LENGTH && text.length > 0 && !SHORTENED.test(text)) return text;
  if (text.length === 0) return '\\x00-empty';
  const digest = createHash('sha256').update(vm).digest('hex').slice(0, DIGEST_CHARS);
  return `${text.slice(0, MAX_LABEL_VALUE_LENGTH - DIGEST_CHARS - 1)}~${digest}`;
}
