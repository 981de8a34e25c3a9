# Runs a command (argv[1:]) on a terminal of its own (a pty, in a new session), prints
# `started <pid>` once it wrote `daemon ready`, then hangs the terminal up — closes the master
# side, as an ssh session or a terminal window that goes away does — prints `hung up`, and waits
# for the command to exit, printing `exited <status>`. Every later write of the command to its
# stdout or stderr fails with EIO. Killed with the command by the test that runs it.
import os, pty, subprocess, sys, time

master, slave = pty.openpty()
p = subprocess.Popen(sys.argv[1:], stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
os.close(slave)
seen = b''
deadline = time.time() + 60
while b'daemon ready' not in seen and time.time() < deadline:
    try:
        seen += os.read(master, 4096)
    except OSError:
        break
print('started', p.pid, flush=True)
os.close(master)
print('hung up', flush=True)
print('exited', p.wait(), flush=True)
