"""Real-socket checks of a vtarget serial port, run as `vtarget run ... -- python serial_checks.py MODE`.

Modes: writers (one writer, force takeover), slow (a client that never reads is
dropped, the others get everything), binary (all 256 byte values round-trip),
fds (1,000 connect/disconnect cycles leave vtarget's fd count unchanged),
rotation (a 1 MiB stream through 64 KiB log rotation loses no byte).
Exit 0 when every check holds.
"""
import os, socket, sys, threading, time

UART = os.environ["VTARGET_SERIAL_UART0"]
FORCE = UART[:-len(".sock")] + ".force.sock"
LINES = 16384


def client(path=UART):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s


def read_until(s, marker, timeout=60, count=1):
    s.settimeout(timeout)
    buf = b""
    while buf.count(marker) < count:
        chunk = s.recv(1 << 20)
        if not chunk:
            raise AssertionError(f"EOF before {marker!r} x{count}; got {buf[-200:]!r}")
        buf += chunk
    return buf


def drain(s, seconds=0.3):
    s.settimeout(seconds)
    try:
        while s.recv(1 << 20):
            pass
    except socket.timeout:
        pass


def check_stream(data, copies):
    """Every numbered line of `copies` streams, in order, nothing missing."""
    lines = [l for l in data.split(b"\r\n") if len(l) == 62 and l[8:9] == b" "]
    numbers = [int(l[:8], 16) for l in lines]
    expected = list(range(LINES)) * copies
    assert numbers == expected, f"{len(numbers)} stream lines, wanted {len(expected)}; first gap at {next((i for i, (a, b) in enumerate(zip(numbers, expected)) if a != b), len(numbers))}"


def writers():
    a, b = client(), client()
    drain(a); drain(b)
    a.sendall(b"ping\r")
    read_until(a, b"pong")
    b.sendall(b"ping\r")
    assert b"read-only" in read_until(b, b"read-only"), "a second writer was not refused"
    c = client(FORCE)
    drain(c)
    c.sendall(b"ping\r")
    read_until(c, b"pong")
    assert b"taken over" in read_until(a, b"taken over")
    a.sendall(b"ping\r")  # A is read-only now: no third pong for C
    time.sleep(0.5)
    drain(c, 0.5)
    c.sendall(b"ping\r")
    out = read_until(c, b"pong")
    assert out.count(b"pong") == 1, out


def slow():
    stalled = client()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader, writer = client(), client()
    drain(reader); drain(writer)
    writer.sendall(b"stream\r")
    read_until(writer, b"stream done", 120)
    writer.sendall(b"stream\r")
    got = read_until(reader, b"stream done", 120, count=2)
    check_stream(got, 2)
    # Dropped: it reads what the kernel held for it, then EOF, while the
    # instance runs on (vtarget says so on its stderr).
    stalled.settimeout(10)
    seen = 0
    while True:
        chunk = stalled.recv(1 << 20)
        if not chunk:
            break
        seen += len(chunk)
    assert seen < 2 * LINES * 64, f"the stalled client got everything ({seen} bytes): it was not dropped"


def fanout():
    """Sixteen readers, so output goes to them in batches: each gets every
    line of two streams in order, and a ping after them is still answered."""
    readers = [client() for _ in range(16)]
    for r in readers:
        drain(r, 0.1)
    got = [None] * len(readers)
    def read(i):
        got[i] = read_until(readers[i], b"stream done", 120, count=2)
    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(readers))]
    for t in threads:
        t.start()
    readers[0].sendall(b"stream\r")
    time.sleep(0.2)
    readers[0].sendall(b"stream\r")
    for t in threads:
        t.join()
    for data in got:
        check_stream(data, 2)
    readers[0].sendall(b"ping\r")
    for r in readers:
        read_until(r, b"pong", 10)


def binary():
    s = client()
    drain(s)
    payload = bytes(b for b in range(256) if b not in (0x0A, 0x0D))
    s.sendall(payload)
    echoed = read_until(s, payload[-8:], 30)
    assert payload in echoed, "bytes were altered on the way"


def count_fds():
    return len(os.listdir(f"/proc/{os.getppid()}/fd"))


def fds():
    qmp = os.environ["VTARGET_QMP"]
    time.sleep(0.3)
    before = count_fds()
    for i in range(500):
        s = client()
        s.close()
        q = socket.socket(socket.AF_UNIX)
        q.connect(qmp)
        q.recv(4096)  # the greeting
        q.close()
    time.sleep(1.0)
    after = count_fds()
    assert after == before, f"vtarget had {before} fds before 1,000 connections and {after} after"


def rotation():
    s = client()
    drain(s)
    s.sendall(b"stream\r")
    read_until(s, b"stream done", 120)
    time.sleep(0.3)
    logs = os.path.join(os.path.dirname(UART), "logs")
    rotated = sorted((f for f in os.listdir(logs) if f.startswith("uart0.raw.")), key=lambda f: -int(f.rsplit(".", 1)[1]))
    assert len(rotated) >= 15, f"expected many rotations of a 1 MiB stream at 64 KiB, got {rotated}"
    data = b"".join(open(os.path.join(logs, f), "rb").read() for f in rotated + ["uart0.raw"])
    check_stream(data, 1)
    text = b"".join(open(os.path.join(logs, f), "rb").read() for f in sorted(os.listdir(logs)) if f.startswith("uart0.log"))
    assert text.count(b"Z ") >= LINES, "timestamped log lines are missing"


{"writers": writers, "slow": slow, "fanout": fanout, "binary": binary, "fds": fds, "rotation": rotation}[sys.argv[1]]()
print(f"serial {sys.argv[1]}: ok", file=sys.stderr)
