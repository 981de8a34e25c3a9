# Sends one datagram (argv[2]) to the AF_UNIX datagram socket at argv[1], for the barriers of
# notify-fixture.ts and journald-fixture.ts: Node's dgram cannot send on AF_UNIX sockets.
import socket
import sys

sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.sendto(sys.argv[2].encode("utf-8"), sys.argv[1])
