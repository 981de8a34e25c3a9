// Says HELLO on the plugin socket (argv[2]) for the VM id argv[4], then attaches one stand-in vCPU
// on the attach socket (argv[3]) under the session WELCOME gave, and prints `attached` or what went
// wrong. Run under another uid by daemon-socket-activation.test.ts, so it is plain JavaScript over
// the compiled modules (no loader needed).
const dist = (m) => import(new URL(`../../../dist/${m}`, import.meta.url).href);
const { PluginClient } = await dist('vmm/plugin-client.js');
const { AttachClient } = await dist('vmm/attach-client.js');
const { createSealedStandInVcpuFd, closeFd, KVM_RUN_DEFAULT_MMAP_SIZE } = await dist('kvm/index.js');
const [pluginSocket, attachSocket, vmId] = process.argv.slice(2);

const client = new PluginClient({ socket: pluginSocket, vmId, vcpuCount: 1, caps: 0 });
let attach = null;
try {
  await client.connect();
  attach = AttachClient.connect(attachSocket);
  const vcpu = createSealedStandInVcpuFd(vmId, KVM_RUN_DEFAULT_MMAP_SIZE);
  await attach.attach(client.sessionId, 0, vcpu);
  closeFd(vcpu);
  process.stdout.write('attached\n');
} catch (err) {
  process.stdout.write(`${err.code ?? 'error'}: ${err.message}\n`);
} finally {
  attach?.close();
  await client.close();
}
