/**
 * Connections not yet past HELLO, counted per peer process: one process may hold only a small
 * share of them, so a peer that connects and never says HELLO cannot take every connection slot
 * (`limits.maxSessions`) from the other VMs' VMMs while its connections wait out the HELLO timeout.
 *
 * The count is of live connection objects, keyed by the SO_PEERCRED pid of the process that
 * connected, and drops as each is admitted at HELLO or closes. A PID can be reused: a connection
 * whose connecting process has exited (its pidfd says so) no longer counts for that PID, so a
 * process that inherits the PID is not refused for connections it never made.
 */

/**
 * Connections one process may hold before HELLO. A VMM opens one plugin connection per VM and
 * says HELLO as soon as it connects (vmm/plugin-client.ts, vmm/c, vmm/rust): one such connection
 * at a time, two while the daemon has not yet seen the close of the one it replaces. Eight leaves
 * room for a process that starts a few VMs at once; the vCPU attach connections go to another
 * socket and do not count.
 */
export const PRE_HELLO_PER_PROCESS = 8;

export interface PreHelloConnection {
  /** True once the process that connected has exited (false when that cannot be told). */
  peerExited(): boolean;
}

export class PreHelloCounts<C extends PreHelloConnection> {
  readonly #byPid = new Map<number, Set<C>>();

  /** Connections before HELLO made by the live process `pid`. */
  held(pid: number): number {
    let n = 0;
    for (const c of this.#byPid.get(pid) ?? []) if (!c.peerExited()) n++;
    return n;
  }

  add(pid: number, c: C): void {
    const set = this.#byPid.get(pid);
    if (set) set.add(c);
    else this.#byPid.set(pid, new Set([c]));
  }

  /** The connection said HELLO and was admitted, or closed: it no longer counts. */
  remove(pid: number, c: C): void {
    const set = this.#byPid.get(pid);
    if (!set?.delete(c)) return;
    if (set.size === 0) this.#byPid.delete(pid);
  }

  /** Connections counted, all processes (tests). */
  get size(): number {
    let n = 0;
    for (const set of this.#byPid.values()) n += set.size;
    return n;
  }
}
