// Connects to the plugin socket (argv[2]) `count` times (argv[4], default 1), one after another,
// says HELLO for the VM id argv[3] on each, and prints each first answer's type and code. Run under
// another uid by test/security/peer-auth.test.ts, so it is plain JavaScript over the compiled
// protocol module (no loader needed).
import { connect } from 'node:net';

const proto = await import(new URL('../../../dist/protocol/index.js', import.meta.url).href);
const [path, vmId, count = '1'] = process.argv.slice(2);

function once(n) {
  return new Promise((resolve) => {
    const s = connect(path);
    let said = false;
    const say = (line) => {
      if (said) return;
      said = true;
      process.stdout.write(`${line}\n`);
      s.destroy();
      resolve();
    };
    const parser = new proto.FrameParser((m) => say(`${m.type} ${m.code ?? ''}`.trim()), {
      accept: proto.PLUGIN_ACCEPTS,
    });
    s.on('data', (c) => parser.push(c));
    s.on('error', (e) => say(`error ${e.code}`));
    s.on('close', () => say('closed'));
    s.once('connect', () =>
      s.write(
        proto.encodeMessage({
          type: 'hello',
          version: proto.PROTOCOL_VERSION,
          caps: 0,
          vmmPid: process.pid,
          vcpuCount: 1,
          extAbtEsrCap: 0,
          vmId: `${vmId}${n === 0 ? '' : `-${n}`}`,
          labels: {},
        }),
      ),
    );
  });
}

for (let i = 0; i < Number(count); i++) await once(i);
