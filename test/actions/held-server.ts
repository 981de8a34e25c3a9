/**
 * An HTTP migration hook endpoint on 127.0.0.1 that holds each request until the test answers it
 * (`seen[i].res`). `when` waits for a condition, re-checked at each request and each `wake()` (the
 * test wakes it on whatever else its conditions look at), with the usual deadline.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpHook, type MigrationPayload } from '../../actions/index.js';
import { within } from '../helpers/wait.js';

export interface HeldRequest {
  body: MigrationPayload;
  /** The body as it came. */
  raw: string;
  /** The request's Idempotency-Key header. */
  key: string | undefined;
  res: ServerResponse;
}

export function heldServer() {
  const seen: HeldRequest[] = [];
  const changed: Array<() => void> = [];
  const wake = () => {
    for (const f of changed.splice(0)) f();
  };
  const server = createServer((req, res) => {
    let data = '';
    req.on('data', (c: Buffer) => {
      data += c.toString();
    });
    req.on('end', () => {
      const key = req.headers['idempotency-key'];
      seen.push({ body: JSON.parse(data), raw: data, key: typeof key === 'string' ? key : undefined, res });
      wake();
    });
  });
  return {
    seen,
    wake,
    listen: () => new Promise<void>((r) => server.listen(0, '127.0.0.1', r)),
    url: () => `http://127.0.0.1:${(server.address() as AddressInfo).port}/migrate`,
    /** An HTTP hook named `name` that posts here, once per migration (no retries). */
    hook: (name = 'orchestrator') =>
      new HttpHook(name, {
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/migrate`,
        timeoutMs: 60_000,
        retries: 0,
        backoffMs: 100,
        maxBackoffMs: 100,
        headers: {},
      }),
    /** The requests that asked to migrate `vm`, oldest first. */
    requestsFor: (vm: string) => seen.filter((s) => s.body.vm.id === vm),
    /** Resolves once `pred` holds. */
    when: (what: string, pred: () => boolean) =>
      within(
        what,
        new Promise<void>((resolve) => {
          const check = () => (pred() ? resolve() : changed.push(check));
          check();
        }),
      ),
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}
