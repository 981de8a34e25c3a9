# A journald that takes nothing until it is resumed: binds the datagram socket argv[1], waits for
# a writer to open and close the FIFO argv[2], then appends each entry it receives to the file
# argv[3] as one line, its KEY=value lines joined by '|'. (Not to stdout: a node process sharing
# that pipe makes it non-blocking, and a full pipe would then lose lines.) An entry libsystemd
# could not send as a datagram (EAGAIN, ENOBUFS) comes as a sealed memfd passed with SCM_RIGHTS,
# and is read as journald reads it.
import array
import os
import socket
import sys

s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2]) as fifo:
    fifo.read()
with open(sys.argv[3], "a") as out:
    while True:
        data, ancillary, _, _ = s.recvmsg(1 << 20, socket.CMSG_SPACE(16))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                for fd in array.array("i", payload[: len(payload) - len(payload) % 4]):
                    # libsystemd wrote it before sealing it: its offset is at the end.
                    os.lseek(fd, 0, os.SEEK_SET)
                    with os.fdopen(fd, "rb") as f:
                        data += f.read()
        out.write("|".join(data.decode("utf-8", "replace").rstrip("\n").split("\n")) + "\n")
        out.flush()
