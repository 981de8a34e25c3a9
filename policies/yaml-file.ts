/**
 * Reading a YAML file (a policy, a policy test, the daemon's configuration) within bounds, and any
 * other file the daemon reads back (the migration state) the same way. The
 * path is the operator's, but what it names may not be what they meant: a FIFO would hold the
 * read — a reload, every reload after it — until something writes to it; a device such as
 * /dev/zero would be read until memory runs out. Only a regular file is read, of at most
 * `YAML_LIMITS.maxChars` bytes, opened without waiting (O_NONBLOCK) and read once; a file that
 * grows past the bound while it is read is refused, not cut short.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import type { PolicyIssue } from './errors.js';
import { YAML_LIMITS } from './yaml-source.js';

/** The file's text, or the one `unreadable` issue that says why not (an errno name, or the bound it is past). */
export function readYamlFile(
  path: string,
  maxBytes: number = YAML_LIMITS.maxChars,
): { ok: true; text: string } | { ok: false; issue: PolicyIssue } {
  const read = readRegularFile(path, maxBytes);
  if (read.ok) return read;
  return {
    ok: false,
    issue: { code: 'unreadable', path: '', line: 0, message: `cannot read ${path}: ${read.why}` },
  };
}

/**
 * The text of the regular file at `path`, read as above within `maxBytes`; `flags` are added to
 * the open's (O_NOFOLLOW for a file only the daemon writes). Otherwise why not: an errno name
 * (`code` too), the kind of file it is, or the bound it is past.
 */
export function readRegularFile(
  path: string,
  maxBytes: number,
  flags = 0,
): { ok: true; text: string } | { ok: false; why: string; code?: string } {
  const refused = (why: string) => ({ ok: false as const, why });
  const errno = (err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code;
    return code === undefined ? refused(String(err)) : { ok: false as const, why: code, code };
  };
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | flags);
  } catch (err) {
    return errno(err);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return refused(`not a regular file (${kindOf(st)})`);
    if (st.size > maxBytes) return refused(`${st.size} bytes is over the ${maxBytes}-byte limit`);
    // Sized by the fstat, grown if the file grows meanwhile, up to one byte past the bound.
    let buf = Buffer.allocUnsafe(Math.min(st.size, maxBytes) + 1);
    let n = 0;
    for (;;) {
      if (n === buf.length) {
        if (n > maxBytes) break;
        const bigger = Buffer.allocUnsafe(Math.min(buf.length * 2, maxBytes + 1));
        buf.copy(bigger, 0, 0, n);
        buf = bigger;
      }
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
    }
    if (n > maxBytes) return refused(`over the ${maxBytes}-byte limit (it grew while it was read)`);
    return { ok: true, text: buf.toString('utf8', 0, n) };
  } catch (err) {
    return errno(err);
  } finally {
    closeSync(fd);
  }
}

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}
