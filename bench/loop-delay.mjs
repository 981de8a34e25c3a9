/**
 * Given to a daemon with `node --import` by bench/control-answers.ts, for the measurement only:
 * its event loop's delay (perf_hooks, 1 ms resolution), printed on stdout and reset at each
 * SIGUSR2 (which the daemon does not otherwise handle).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

const delay = monitorEventLoopDelay({ resolution: 1 });
delay.enable();
process.on('SIGUSR2', () => {
  process.stdout.write(`loop-delay max ${delay.max} p99 ${delay.percentile(99)}\n`);
  delay.reset();
});
