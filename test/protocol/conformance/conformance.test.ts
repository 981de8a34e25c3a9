/**
 * The conformance suite: the same scenarios, driven by the byte vectors of
 * scripts/protocol-vectors.ts (docs/protocol.md §11), run against every plugin implementation —
 * the C library, the Rust crate and the TypeScript client — asking for 1.1 and in 1.0
 * compatibility mode. What a plugin sends is compared with the vectors byte for byte (the event
 * time and the plugin's own seq aside); what it is sent are the vectors themselves.
 *
 * Longer than 350 lines: every scenario for every implementation in one place, so that a scenario
 * added for one plugin holds the other two to it as well.
 */
import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import { CAP, type EventMsg, encodeMessage, type Message, WIRE_ERROR } from '../../../protocol/index.js';
import { vector } from '../../../scripts/protocol-vectors.js';
import { removeDir, startDaemon } from '../../helpers/daemon.js';
import { within } from '../../helpers/wait.js';
import { IMPLS, type ImplName, startDriver } from './drivers.js';
import { type Fake, type FakeConn, type Frame, fakeDaemon } from './fake-daemon.js';
import { IMAGE_VECTORS, type ImageVector, image } from './image-vectors.js';

const MERGED_IMAGE = `000001${'0'.repeat(122)}`;
/**
 * The HELLO of the vectors: vm-7, tenant=acme, caps 0x33 (SEA_TO_USER|INJECT_EXT_DABT|RAS|NISV_TO_USER:
 * the NISV exit below needs NISV_TO_USER declared in 1.1), pid 4242, 4 vCPUs.
 */
const CONNECT = 'vm-7 0x33 4 4242 0 tenant=acme';
/**
 * The same HELLO declaring the posted IABT/ESR ABI too (EXT_ABT_ESR, probed as cap 241): the one
 * host for which both INJECT vectors are valid images. A plugin checks an image against the ABI its
 * HELLO declared (§5.1), so the posted vector sent after CONNECT's HELLO would rightly be refused.
 */
const CONNECT_POSTED = 'vm-7 0x37 4 4242 241 tenant=acme';
const EXITS = {
  sea: 'sea 0 1 0x92000010 0x81234bad 0x45678b000',
  nisv: 'nisv 1 0x7 0x8000000',
  mmio: 'mmio 2 0x8000000 8 0',
  sigbus: 'sigbus none 5 12 none',
} as const;

const welcomeVector = (minor: number) => vector(minor >= 1 ? 'welcome' : 'welcome-v10').message;
const helloVector = (minor: number) => vector(minor >= 1 ? 'hello' : 'hello-v10').message;

/** The bytes the vector `id` has with this plugin's seq (and, for events, its time). */
function expected(id: string, actual: Message): Buffer {
  const v = vector(id).message;
  const own: Partial<EventMsg> = {};
  if ('seq' in actual) own.seq = actual.seq;
  if ('timeNs' in actual) own.timeNs = actual.timeNs;
  return encodeMessage({ ...v, ...own } as Message);
}

function verdictBytes(id: string, seq: number): Buffer {
  return encodeMessage({ ...(vector(id).message as Extract<Message, { type: 'verdict' }>), seq });
}

/** The driver's line for a daemon verdict built from vector `id`. */
function verdictLine(id: string, seq: number): string {
  const v = vector(id).message as Extract<Message, { type: 'verdict' }>;
  const name = ['RESUME', 'INJECT', 'INJECT_EMULATED', 'KILL'][v.action];
  const hex = Buffer.from(v.vcpuEvents).toString('hex');
  return `verdict ${seq} ${name} ${v.flags} ${v.graceMs} 0x${v.esr.toString(16)} ${hex} daemon`;
}

async function setup(t: TestContext, impl: ImplName, onFrame: (c: FakeConn, f: Frame) => void) {
  const driver = await startDriver(t, impl);
  if (!driver) return null;
  const fake = await fakeDaemon(onFrame);
  t.after(async () => {
    await driver.stop();
    await fake.close();
  });
  return { driver, fake };
}

/** A fake that welcomes every HELLO with the vector for the asked version and echoes HEARTBEATs. */
function welcoming(answer: (c: FakeConn, f: Frame) => void = () => {}) {
  return (c: FakeConn, f: Frame) => {
    if (f.msg.type === 'hello') c.send(encodeMessage(welcomeVector(f.msg.minor ?? 0)));
    else answer(c, f);
  };
}

async function connect(
  driver: { send(c: string): Promise<string> },
  fake: Fake,
  minor: number,
  hello = CONNECT,
) {
  const line = await driver.send(`connect ${fake.path} ${hello}`);
  const w = line.split(' ');
  assert.equal(w[0], 'welcome', line);
  assert.deepEqual([w[1], w[2], w[6]], ['1', String(minor), minor >= 1 ? '16384' : '0'], line);
}

for (const impl of IMPLS) {
  for (const minor of [1, 0]) {
    describe(`${impl} plugin, protocol 1.${minor}`, () => {
      test('its frames are the vectors, and every verdict vector is applied as sent', async (t) => {
        const replies = ['verdict-inject', 'verdict-inject-ext-abt', 'verdict-kill', 'verdict-emulated'];
        const s = await setup(
          t,
          impl,
          welcoming((c, f) => {
            if ('seq' in f.msg && f.msg.type !== 'applied')
              c.send(verdictBytes(replies.shift() as string, f.msg.seq));
          }),
        );
        if (!s) return;
        const { driver, fake } = s;
        assert.equal(await driver.send(`init 10000 inject ${minor}`), 'ok');
        await connect(driver, fake, minor, CONNECT_POSTED);
        const conn = await fake.conn(0);
        const hello = { ...helloVector(minor), caps: 0x37, extAbtEsrCap: 241 } as Message;
        assert.deepEqual(
          conn.frames[0]?.bytes,
          encodeMessage(hello),
          'HELLO: the vector, declaring EXT_ABT_ESR',
        );
        const order = [
          ['sea', 'event-sea', 'verdict-inject'],
          ['nisv', 'event-nisv', 'verdict-inject-ext-abt'],
          ['mmio', 'event-mmio', 'verdict-kill'],
          ['sigbus', 'event-sigbus', 'verdict-emulated'],
        ] as const;
        for (const [exit, eventId, verdictId] of order) {
          const line = await driver.send(EXITS[exit]);
          const event = await conn.next(vector(eventId).message.type, 1);
          assert.deepEqual(event.bytes, expected(eventId, event.msg), `${exit} event bytes`);
          assert.equal(line, verdictLine(verdictId, (event.msg as EventMsg).seq), `${exit} verdict`);
        }
        assert.equal(await driver.send('applied 6 -22'), 'ok');
        const applied = await conn.next('applied');
        assert.deepEqual(applied.bytes, encodeMessage(vector('applied').message), 'APPLIED');
        assert.equal(await driver.send('applied-fallback 9 0 1'), 'ok');
        const second = await conn.next('applied', conn.frames.indexOf(applied) + 1);
        const want =
          minor >= 1
            ? encodeMessage(vector('applied-fallback').message)
            : encodeMessage({ type: 'applied', seq: 9, result: 0 });
        assert.deepEqual(second.bytes, want, 'APPLIED for a fallback');
        assert.deepEqual(conn.errors, []);
      });

      test('no verdict by the deadline: the fallback answers, and a late verdict is never applied', async (t) => {
        const s = await setup(t, impl, welcoming());
        if (!s) return;
        const { driver, fake } = s;
        assert.equal(await driver.send(`init 300 inject ${minor}`), 'ok');
        await connect(driver, fake, minor);
        const conn = await fake.conn(0);
        const line = await driver.send(EXITS.sea);
        const event = await conn.next('sea');
        const seq = (event.msg as EventMsg).seq;
        assert.equal(line, `verdict ${seq} INJECT 0 0 0x0 ${MERGED_IMAGE} fallback`);
        const from = conn.frames.length;
        conn.send(verdictBytes('verdict-kill', seq)); // late: must not reach the vCPU
        if (minor >= 1) {
          await driver.send('poll 5000');
          const applied = await conn.next('applied', from);
          // 1.1: the daemon is told the vCPU got the fallback INJECT, not the late KILL.
          assert.deepEqual(
            applied.bytes,
            expected('applied-fallback', { ...applied.msg }),
            'APPLIED FALLBACK',
          );
          assert.equal(
            conn.frames.slice(from).some((f) => f.msg.type === 'sea'),
            false,
            'no replay on the live connection',
          );
        } else {
          await driver.send('poll 500');
        }
        assert.equal(await driver.send('close 0'), 'ok');
        await conn.next('goodbye', from);
        if (minor === 0)
          assert.equal(conn.types().includes('applied'), false, '1.0 has no APPLIED for a late verdict');
        assert.deepEqual(conn.errors, []);
      });

      test('events answered by the fallback are replayed after the next WELCOME, then forgotten on the echo', async (t) => {
        const s = await setup(t, impl, (c, f) => {
          if (f.msg.type === 'hello') c.send(encodeMessage(welcomeVector(f.msg.minor ?? 0)));
          // Only the second connection answers: it stores the replays and echoes the HEARTBEAT.
          if (f.msg.type === 'heartbeat' && s?.fake.conns.indexOf(c) === 1) c.send(f.bytes);
        });
        if (!s) return;
        const { driver, fake } = s;
        assert.equal(await driver.send(`init 300 inject ${minor}`), 'ok');
        await connect(driver, fake, minor);
        await driver.send(EXITS.sea);
        const original = await (await fake.conn(0)).next('sea');
        assert.equal(await driver.send('close 0'), 'ok');
        await connect(driver, fake, minor);
        const second = await fake.conn(1);
        const replay = await second.next('sea');
        const want = { ...(original.msg as EventMsg), replay: true, fallbackAction: 1 } as Message;
        assert.deepEqual(replay.msg, want, 'the kept event, flagged REPLAY with the fallback it got');
        assert.deepEqual(replay.bytes, encodeMessage(want));
        await second.next('heartbeat', second.frames.indexOf(replay));
        assert.deepEqual(
          second.types().slice(0, 3),
          ['hello', 'sea', 'heartbeat'],
          'replays first, then HEARTBEAT',
        );
        const deadline = Date.now() + 10_000;
        let stats = '';
        while (Date.now() < deadline) {
          await driver.send('poll 200');
          stats = await driver.send('stats');
          if (stats.split(' ')[4] === '0') break;
        }
        assert.equal(stats.split(' ')[4], '0', `kept events forgotten after the echo: ${stats}`);
      });

      if (minor >= 1)
        test('an event that timed out on the live connection is never replayed on it, even after a replay is acknowledged', async (t) => {
          let held: { c: FakeConn; bytes: Buffer } | null = null;
          const s = await setup(t, impl, (c, f) => {
            if (f.msg.type === 'hello') c.send(encodeMessage(welcomeVector(f.msg.minor ?? 0)));
            // The second connection holds its HEARTBEAT echo until the test releases it.
            if (f.msg.type === 'heartbeat' && s?.fake.conns.indexOf(c) === 1) held = { c, bytes: f.bytes };
          });
          if (!s) return;
          const { driver, fake } = s;
          assert.equal(await driver.send('init 300 inject 1'), 'ok');
          await connect(driver, fake, 1);
          await driver.send(EXITS.sea); // unanswered: kept
          assert.equal(await driver.send('close 0'), 'ok');
          await connect(driver, fake, 1);
          const second = await fake.conn(1);
          await second.next('heartbeat');
          await driver.send(EXITS.nisv.replace('nisv 1', 'nisv 0')); // times out on the live connection
          const live = (await second.next('nisv')).msg as EventMsg;
          const echo = held as { c: FakeConn; bytes: Buffer } | null;
          assert.ok(echo, 'the replay HEARTBEAT was held');
          echo.c.send(echo.bytes);
          await driver.send('poll 500');
          await driver.send('poll 300');
          const replays = second.frames.filter((f) => 'replay' in f.msg && f.msg.replay);
          assert.deepEqual(
            replays.map((f) => f.msg.type),
            ['sea'],
            `only the event kept from the first connection is replayed, not nisv seq ${live.seq}`,
          );
          second.send(verdictBytes('verdict-inject', live.seq));
          await driver.send('poll 2000');
          const applied = await second.next('applied');
          assert.equal((applied.msg as Extract<Message, { type: 'applied' }>).seq, live.seq);
        });

      test('a VERDICT with a reserved byte set is refused: the fallback answers, the connection is dropped', async (t) => {
        const s = await setup(
          t,
          impl,
          welcoming((c, f) => {
            if (f.msg.type !== 'sea') return;
            const bad = verdictBytes('verdict-inject', f.msg.seq);
            bad[8 + 6] = 1;
            c.send(bad);
          }),
        );
        if (!s) return;
        const { driver, fake } = s;
        assert.equal(await driver.send(`init 5000 inject ${minor}`), 'ok');
        await connect(driver, fake, minor);
        const line = await driver.send(EXITS.sea);
        assert.match(line, / fallback$/, line);
        await (await fake.conn(0)).closed;
      });

      test('against the real daemon: WELCOME for the asked version, and the built-in answer', async (t) => {
        const driver = await startDriver(t, impl);
        if (!driver) return;
        const d = await startDaemon({ metrics: false });
        t.after(async () => {
          await driver.stop();
          await d.stop();
          removeDir(d.dir);
        });
        assert.equal(await driver.send(`init 10000 inject ${minor}`), 'ok');
        const w = (
          await driver.send(`connect ${d.socket} conf-${impl}-${minor} 0x33 4 ${process.pid} 0`)
        ).split(' ');
        assert.deepEqual(
          [w[0], w[1], w[2], w[6]],
          ['welcome', '1', String(minor), minor >= 1 ? '16384' : '0'],
        );
        const line = await driver.send(EXITS.sea);
        assert.equal(line, `verdict 1 INJECT 0 0 0x0 ${MERGED_IMAGE} daemon`);
        assert.equal(await driver.send('applied 1 0'), 'ok');
        assert.equal(await driver.send('close 2'), 'ok');
      });
    });
  }

  describe(`${impl} plugin, INJECT image checks (§5.1)`, () => {
    /** A fake that answers each event of the current vector's kind with an INJECT of its image. */
    function injecting(current: () => ImageVector | null) {
      return welcoming((c, f) => {
        if (f.msg.type === 'goodbye') c.socket.end(); // the plugin's close need not wait its deadline
        const v = current();
        if (!v || f.msg.type !== v.event || ('replay' in f.msg && f.msg.replay)) return;
        const verdict = vector('verdict-inject').message as Extract<Message, { type: 'verdict' }>;
        c.send(encodeMessage({ ...verdict, seq: f.msg.seq, vcpuEvents: image(v.bytes) }));
      });
    }
    const hello = (v: ImageVector) =>
      `vm-7 0x${v.caps.toString(16)} 4 4242 ${v.caps & CAP.EXT_ABT_ESR ? 241 : 0} tenant=acme`;

    test('each image vector: a refused image gets the fallback and the connection is dropped; the rest are applied as sent', async (t) => {
      let current: ImageVector | null = null;
      const s = await setup(
        t,
        impl,
        injecting(() => current),
      );
      if (!s) return;
      const { driver, fake } = s;
      for (const v of IMAGE_VECTORS) {
        current = v;
        assert.equal(await driver.send('init 5000 inject 1'), 'ok');
        const n = fake.conns.length;
        await connect(driver, fake, 1, hello(v));
        const conn = await fake.conn(n);
        const line = await driver.send(EXITS[v.event]);
        const seq = ((await conn.next(v.event)).msg as EventMsg).seq;
        if (v.refused) {
          // The inject fallback, where KVM can take it: not after a SIGBUS, nor on a host without
          // INJECT_EXT_DABT (byte 2 is pad there), which get RESUME as the daemon gives them.
          const injects = v.event !== 'sigbus' && (v.caps & CAP.INJECT_EXT_DABT) !== 0;
          const want = injects ? `INJECT 0 0 0x0 ${MERGED_IMAGE}` : `RESUME 0 0 0x0 ${'0'.repeat(128)}`;
          assert.equal(line, `verdict ${seq} ${want} fallback`, v.name);
          await within(`${v.name}: the plugin drops the connection`, conn.closed);
        } else {
          const hex = Buffer.from(image(v.bytes)).toString('hex');
          assert.equal(line, `verdict ${seq} INJECT 0 0 0x0 ${hex} daemon`, v.name);
        }
        assert.equal(await driver.send('close 0'), 'ok');
      }
    });

    test('the exit a refused image left to the fallback is replayed after the reconnect', async (t) => {
      const bad = IMAGE_VECTORS.find((v) => v.name === 'a reserved byte') as ImageVector;
      const s = await setup(
        t,
        impl,
        injecting(() => bad),
      );
      if (!s) return;
      const { driver, fake } = s;
      assert.equal(await driver.send('init 5000 inject 1'), 'ok');
      await connect(driver, fake, 1, hello(bad));
      const line = await driver.send(EXITS.sea);
      assert.match(line, / fallback$/, line);
      const first = await fake.conn(0);
      const event = (await first.next('sea')).msg as EventMsg;
      await within('the plugin drops the connection', first.closed);
      await connect(driver, fake, 1, hello(bad));
      const replay = (await (await fake.conn(1)).next('sea')).msg as EventMsg;
      assert.deepEqual(
        [replay.seq, replay.replay, replay.fallbackAction],
        [event.seq, true, 1],
        'the refused exit, replayed with the fallback INJECT it got',
      );
    });
  });

  describe(`${impl} plugin, version negotiation`, () => {
    for (const [what, refusal] of [
      [
        'REJECT VERSION naming 1.0',
        { ...(vector('reject-version').message as object), supported: { major: 1, minor: 0 } },
      ],
      [
        "a 1.0 daemon's ERROR BAD_FIELD",
        {
          type: 'error',
          code: WIRE_ERROR.BAD_FIELD,
          message: 'HELLO: reserved byte at body offset 2 is not zero',
        },
      ],
    ] as const) {
      test(`${what}: the plugin asks again for 1.0 and gets it`, async (t) => {
        const s = await setup(t, impl, (c, f) => {
          if (f.msg.type !== 'hello') return;
          if ((f.msg.minor ?? 0) >= 1) c.socket.end(encodeMessage(refusal as Message));
          else c.send(encodeMessage(welcomeVector(0)));
        });
        if (!s) return;
        const { driver, fake } = s;
        assert.equal(await driver.send('init 5000 inject 1'), 'ok');
        await connect(driver, fake, 0);
        assert.deepEqual(
          (await fake.conn(0)).frames[0]?.bytes,
          encodeMessage(helloVector(1)),
          'first HELLO: 1.1',
        );
        assert.deepEqual(
          (await fake.conn(1)).frames[0]?.bytes,
          encodeMessage(helloVector(0)),
          'second HELLO: 1.0',
        );
      });
    }
  });
}
