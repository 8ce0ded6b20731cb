"""Attacks on the control socket's request handling (issue: security).

Each check sends what an abusive local client would and expects a prompt
answer or a closed connection, never a connection left hanging or a body
buffered in full. Prints one line per check; exits 1 on the first failure.
"""
import os
import socket
import sys
import time

SOCK = sys.argv[1]
mode = sys.argv[2]


def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(SOCK)
    return s


def read_all(s, limit=5.0):
    s.settimeout(limit)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def fail(msg):
    print("FAIL", msg)
    sys.exit(1)


if mode == "long-request-line":
    s = connect()
    t0 = time.monotonic()
    try:
        s.sendall(b"GET /v1/status?" + b"a" * (1 << 20) + b" HTTP/1.1\r\nhost: x\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused while we were still sending: fine, the answer is read below
    reply = read_all(s)
    took = time.monotonic() - t0
    if not reply.startswith(b"HTTP/1.1 431"):
        fail(f"1 MiB request line: expected 431, got {reply[:80]!r}")
    if b'"code":431' not in reply:
        fail(f"431 without the API's error body: {reply!r}")
    print(f"ok long-request-line 431 in {took*1000:.0f} ms")
elif mode == "huge-body":
    s = connect()
    t0 = time.monotonic()
    s.sendall(b"POST /v1/apply HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 104857600\r\n\r\n{")
    reply = read_all(s)
    took = time.monotonic() - t0
    if not reply.startswith(b"HTTP/1.1 413"):
        fail(f"100 MB declared body: expected 413 at once, got {reply[:80]!r}")
    print(f"ok huge-body 413 in {took*1000:.0f} ms")
elif mode == "partial-head":
    # A head that never ends is answered 408 and closed after the head timeout.
    s = connect()
    s.sendall(b"GET /v1/status HTTP/1.1\r\nhost: x\r\n")
    reply = read_all(s, limit=10)
    if not reply.startswith(b"HTTP/1.1 408"):
        fail(f"partial head: expected 408, got {reply[:80]!r}")
    print("ok partial-head 408")
elif mode == "idle":
    # Many idle connections are all closed by the server after the idle timeout.
    conns = [connect() for _ in range(int(sys.argv[3]))]
    deadline = time.monotonic() + float(sys.argv[4])
    closed = 0
    for c in conns:
        c.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            if c.recv(1) == b"":
                closed += 1
        except socket.timeout:
            pass
        except ConnectionResetError:
            closed += 1
    if closed != len(conns):
        fail(f"idle: {closed} of {len(conns)} connections closed by the server")
    print(f"ok idle {closed} closed")
elif mode == "normal":
    # A well-formed request still works, twice on one connection.
    s = connect()
    for _ in range(2):
        s.sendall(b"GET /v1/status HTTP/1.1\r\nhost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
        while len(rest) < length:
            rest += s.recv(65536)
        if not head.startswith(b"HTTP/1.1 200"):
            fail(f"normal request: {head!r}")
    print("ok normal")
elif mode == "absurd-claim":
    # A claim TTL no duration could be is refused, not trapped on.
    s = connect()
    s.sendall(b"POST /v1/pools/default/ci/claim?ttl=1e300 HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
    reply = read_all(s)
    if not reply.startswith(b"HTTP/1.1 400") or b"ttl" not in reply:
        fail(f"absurd claim ttl: {reply!r}")
    print("ok absurd-claim")
elif mode == "unknown-path":
    # An unknown path answers 404 with the API's error body, not an empty one.
    s = connect()
    s.sendall(b"GET /v1/nosuch HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    reply = read_all(s)
    if not reply.startswith(b"HTTP/1.1 404") or b'"code":404' not in reply or b"/v1/nosuch" not in reply:
        fail(f"unknown path: {reply!r}")
    print("ok unknown-path")
else:
    fail("unknown mode " + mode)
