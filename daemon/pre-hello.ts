/**
 * Connections not yet past HELLO, counted per peer process: one process may hold only a small
 * share of them, so a peer that connects and never says HELLO cannot take every connection slot
 * (`limits.maxSessions`) from the other VMs' VMMs while its connections wait out the HELLO timeout.
 *
 * The count is of live connection objects, keyed by the SO_PEERCRED pid of the process that
 * connected (kvm/by-process.ts), and drops as each is admitted at HELLO, closing or closed. A
 * connection whose connecting process has exited (its pidfd says so) no longer counts for that PID.
 */

/**
 * Connections one process may hold before HELLO. A VMM opens one plugin connection per VM and
 * says HELLO as soon as it connects (vmm/plugin-client.ts, vmm/c, vmm/rust): one such connection
 * at a time, two while the daemon has not yet seen the close of the one it replaces. Eight leaves
 * room for a process that starts a few VMs at once; the vCPU attach connections go to another
 * socket and do not count.
 */
export const PRE_HELLO_PER_PROCESS = 8;
