/**
 * A reader that goes away — `seawall events | head`, a terminal closed, a log pipe whose reader
 * died — makes the next write to stdout or stderr fail with EPIPE. Node reports that as an 'error'
 * on the stream, which, unhandled, ended the command with a stack trace. A command whose stdout is
 * gone then ends quietly, with status 0: its output was read as far as its reader wanted. The
 * daemon keeps answering its VMs: what it would have written there is lost, nothing else (the
 * journal, the store and the metrics still have it all).
 */

let keepRunning = false;

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
      if (err.code !== 'EPIPE') throw err;
      if (stream === process.stdout && !keepRunning) process.exit(0);
    });
  }
}
