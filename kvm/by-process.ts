/**
 * Connections counted by the process that made them (its SO_PEERCRED pid), so that one process can
 * be bounded in what it holds: the plugin socket's connections before HELLO (daemon/pre-hello.ts)
 * and the attach socket's connections holding no vCPU (attach/attach-server.ts). A PID can be
 * reused: a connection whose connecting process has exited (`exited`) counts for nobody, so a
 * process given that PID is not refused for connections it never made.
 */
export class ConnectionsByProcess<C> {
  readonly #byPid = new Map<number, Set<C>>();
  readonly #exited: (c: C) => boolean;

  constructor(exited: (c: C) => boolean) {
    this.#exited = exited;
  }

  add(pid: number, c: C): void {
    const set = this.#byPid.get(pid);
    if (set) set.add(c);
    else this.#byPid.set(pid, new Set([c]));
  }

  /** The connection no longer counts (it closed, or left what is counted). */
  remove(pid: number, c: C): void {
    const set = this.#byPid.get(pid);
    if (!set?.delete(c)) return;
    if (set.size === 0) this.#byPid.delete(pid);
  }

  /** Connections of the live process `pid` for which `counts` holds (all, by default). */
  count(pid: number, counts: (c: C) => boolean = () => true): number {
    let n = 0;
    for (const c of this.#byPid.get(pid) ?? []) if (!this.#exited(c) && counts(c)) n++;
    return n;
  }

  /** Connections tracked, all processes, exited or not. */
  get size(): number {
    let n = 0;
    for (const set of this.#byPid.values()) n += set.size;
    return n;
  }
}
