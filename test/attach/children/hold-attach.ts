/**
 * A process that holds attach connections and attaches nothing: argv attach socket, count.
 * Connects `count` times, prints `held`, and stays until it is killed.
 */
import { connectSeqpacket } from '../../../kvm/index.js';

const [path, count] = process.argv.slice(2) as [string, string];
const fds: number[] = [];
for (let i = 0; i < Number(count); i++) fds.push(connectSeqpacket(path));
process.stdout.write('held\n');
setInterval(() => {}, 1e6);
