/** Takes the lock of the store at argv[2], says so, and holds it until killed. */
import { StoreLock } from '../../../store/index.js';

StoreLock.take(process.argv[2] as string);
process.stdout.write('locked\n');
setInterval(() => {}, 60_000);
