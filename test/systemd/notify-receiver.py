# NOTIFY_SOCKET receiver for test/systemd/notify-fixture.ts: Node's dgram cannot bind AF_UNIX
# datagram sockets, Python's socket module can. Prints one JSON line per datagram with the
# receive time on CLOCK_MONOTONIC (the clock of MONOTONIC_USEC=) and the sender pid from
# SCM_CREDENTIALS, the way the service manager identifies the main process (NotifyAccess=).
import json
import os
import socket
import struct
import sys
import time

#
# With --hold it plays a service manager that reads nothing (PID 1 busy in a long daemon-reload):
# it fills its own receive queue (/proc/sys/net/unix/max_dgram_qlen) with SEAWALL_TEST_FILL=
# datagrams until a non-blocking send is refused, so the next sender blocks, and reads only once a
# line arrives on stdin (or never, if none does).
path = sys.argv[1]
hold = "--hold" in sys.argv[2:]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
sock.bind(path)
os.chmod(path, 0o666)
filled = 0
if hold:
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    filler.setblocking(False)
    while True:
        try:
            filler.sendto(("SEAWALL_TEST_FILL=%d" % filled).encode(), path)
        except BlockingIOError:
            break
        filled += 1
    filler.close()
print(json.dumps({"bound": path, "filled": filled}), flush=True)
if hold:
    sys.stdin.readline()
ucred = struct.calcsize("3i")
while True:
    data, anc, _flags, _addr = sock.recvmsg(65536, socket.CMSG_SPACE(ucred))
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    pid = None
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(payload) >= ucred:
            pid = struct.unpack("3i", payload[:ucred])[0]
    text = data.decode("utf-8", "replace")
    print(json.dumps({"usec": now, "pid": pid, "text": text}), flush=True)
