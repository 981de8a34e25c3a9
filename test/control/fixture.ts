/** A control server on a real socket in a temp dir, answering from a real store. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ReloadResult } from '../../control/index.js';
import { ControlServer, type ControlServerOptions, serviceControlContext } from '../../control/index.js';
import type { SessionInfo } from '../../events/session-info.js';
import { EventStore, type PolicyText, StoreReader } from '../../store/index.js';

export interface Fixture {
  dir: string;
  socket: string;
  store: EventStore;
  server: ControlServer;
  sessions: SessionInfo[];
  /** What the next reload answers. */
  nextReload: ReloadResult;
  /** When set, a reload waits for it before answering (a request still running). */
  reloadGate: Promise<void> | null;
  reloads: number;
  /** The policy in force, as the daemon's holder shows it. */
  policy: { current: { version: string }; currentText: PolicyText | null };
  close(): Promise<void>;
}

/** `withReader`: reads run on the reader thread, as in the daemon, rather than on the store's connection. */
export async function startControl(opts: ControlServerOptions = {}, withReader = false): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-ctl-'));
  const socket = join(dir, 'run', 'control.sock');
  const store = new EventStore({ path: join(dir, 'events.sqlite') });
  const reader = withReader ? new StoreReader(store) : null;
  const policy = {
    current: { version: 'v1' },
    currentText: null as PolicyText | null,
    reloads: 0,
    failedReloads: 0,
    lastReloadAtMs: 0,
  };
  const f: Fixture = {
    dir,
    socket,
    store,
    sessions: [],
    nextReload: { ok: true, version: 'v2', issues: [] },
    reloadGate: null,
    reloads: 0,
    policy,
    server: undefined as unknown as ControlServer,
    async close() {
      await f.server.close();
      reader?.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const ctx = serviceControlContext({
    version: '0.0.0-test',
    startedAtMs: () => 1_700_000_000_000,
    sessions: () => f.sessions,
    pipeline: { decided: 12, replays: 1 },
    policy,
    store,
    reader,
    reload: async () => {
      f.reloads++;
      await f.reloadGate;
      if (f.nextReload.ok) policy.current.version = f.nextReload.version;
      return f.nextReload;
    },
    now: () => 1_700_000_060_000,
  });
  f.server = new ControlServer(ctx, opts);
  await f.server.listen({ path: socket });
  return f;
}
