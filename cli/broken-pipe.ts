/**
 * A reader that goes away — `seawall events | head`, a log pipe whose reader died — makes the next
 * write to stdout or stderr fail with EPIPE; a terminal hung up (an ssh session or a window that
 * went away) makes it fail with EIO. Node reports that as an 'error' on the stream, which,
 * unhandled, ended the command with a stack trace. A command whose stdout is gone then ends
 * quietly, with status 0: its output was read as far as its reader wanted. The daemon keeps
 * answering its VMs whatever the error of its stdout or stderr: what it would have written there
 * is lost, nothing else (the journal, the store and the metrics still have it all).
 */

import { fstatSync } from 'node:fs';
import { pointAtDevNull } from '../kvm/index.js';

let keepRunning = false;
let leftTerminal = false;

/** From now on a broken stdout or stderr never ends the process (the daemon, once it runs). */
export function keepRunningOnBrokenPipe(): void {
  keepRunning = true;
}

/**
 * Installs the handling on this process's stdout and stderr. Only a broken stdout ends a command:
 * with stderr gone, what it writes to stdout may still be read.
 */
export function handleBrokenPipes(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EIO') leaveTerminal();
      if (keepRunning) return;
      if (err.code !== 'EPIPE') throw err;
      if (stream === process.stdout) process.exit(0);
    });
  }
}

/**
 * The terminal hung up: its stdio descriptors are pointed at /dev/null. At exit Node restores the
 * terminal modes it found at start, and Node 20 aborts (SIGABRT, a daemon that stopped cleanly
 * exiting as if it had crashed) when that fails on a terminal that is gone; a descriptor that no
 * longer names the terminal is left alone.
 */
function leaveTerminal(): void {
  if (leftTerminal) return;
  leftTerminal = true;
  for (const fd of [0, 1, 2]) {
    try {
      if (fstatSync(fd).isCharacterDevice()) pointAtDevNull(fd);
    } catch {
      // closed: nothing of the terminal left there
    }
  }
}
