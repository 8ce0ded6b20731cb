#!/usr/bin/env python3
"""Endpoint benchmarks: vtarget's serial hub and QMP proxy beside QEMU's own
sockets, measured in the same run. Board: lm3s6965evb with the sample firmware
("stream" sends 1 MiB of numbered lines; "ping" is answered with "pong")."""
import glob, json, os, socket, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VT = os.environ.get("VTARGET", os.path.join(ROOT, ".build/release/vtarget"))
FW = os.path.join(ROOT, "firmware-samples/build")
BOARD = "lm3s6965evb"
STREAM = 16384 * 64


def connect(path, timeout=10):
    end = time.time() + timeout
    while True:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            return s
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.01)


def drain(s, seconds=0.3):
    s.settimeout(seconds)
    try:
        while s.recv(1 << 20):
            pass
    except socket.timeout:
        pass
    s.settimeout(None)


def read_until(s, marker):
    buf = b""
    while marker not in buf[-4096:]:
        chunk = s.recv(1 << 20)
        if not chunk:
            raise SystemExit("bench: EOF")
        buf += chunk
    return buf


class Raw:
    """QEMU alone, its UART and monitor on its own unix sockets."""
    def __init__(self, tmp):
        self.uart, self.qmp = os.path.join(tmp, "uart.sock"), os.path.join(tmp, "qmp.sock")
        self.p = subprocess.Popen(["qemu-system-arm", "-M", BOARD, "-nodefaults", "-display", "none",
            "-kernel", os.path.join(FW, f"{BOARD}.elf"),
            "-chardev", f"socket,id=u,path={self.uart},server=on,wait=on", "-serial", "chardev:u",
            "-qmp", f"unix:{self.qmp},server=on,wait=off"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.s = connect(self.uart)
        read_until(self.s, b"echo ready")

    def readers(self, n):
        return [self.s]

    def release(self):
        pass

    def close(self):
        self.p.kill()
        self.p.wait()


class Vtarget:
    def __init__(self, tmp):
        env = dict(os.environ, VTARGET_RUNTIME_DIR=tmp)
        self.p = subprocess.Popen([VT, "run", "-f", os.path.join(ROOT, f"examples/{BOARD}.yaml"),
            "-f", os.path.join(FW, f"{BOARD}-firmware.yaml")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        end = time.time() + 20
        while not glob.glob(os.path.join(tmp, "run-*", BOARD, "instance.json")):
            if time.time() > end:
                raise SystemExit("bench: vtarget did not start")
            time.sleep(0.01)
        d = glob.glob(os.path.join(tmp, "run-*", BOARD))[0]
        self.uart, self.qmp = os.path.join(d, "uart0.sock"), os.path.join(d, "qmp.sock")
        self.s = connect(self.uart)
        read_until(self.s, b"echo ready")

    def readers(self, n):
        """The measuring reader plus n-1 readers in processes of their own
        (socat to /dev/null), so the fan-out is measured, not Python's GIL."""
        self.extra = [subprocess.Popen(["socat", "-u", f"UNIX-CONNECT:{self.uart}", "OPEN:/dev/null"])
                      for _ in range(n - 1)]
        time.sleep(0.3)
        return [self.s]

    def release(self):
        for p in getattr(self, "extra", []):
            p.kill()
            p.wait()
        self.extra = []

    def close(self):
        self.p.terminate()
        self.p.wait()


def throughput(target, n):
    """MB/s until the slowest of n readers has the whole 1 MiB stream."""
    readers = target.readers(n)
    drain(target.s, 0.2)
    done = []
    def read(r):
        read_until(r, b"stream done")
        done.append(time.perf_counter())
    threads = [threading.Thread(target=read, args=(r,)) for r in readers]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    target.s.sendall(b"stream\r")
    for t in threads:
        t.join()
    target.release()
    return STREAM / (max(done) - t0) / 1e6


def ping_latency(target, n=200):
    drain(target.s, 0.1)
    xs = []
    for _ in range(n):
        t0 = time.perf_counter()
        target.s.sendall(b"ping\r")
        read_until(target.s, b"pong\r\n")
        xs.append((time.perf_counter() - t0) * 1e6)
    xs.sort()
    return xs[len(xs) // 2], xs[int(len(xs) * 0.99) - 1]


def qmp_client(path):
    s = connect(path)
    f = s.makefile("rwb")
    f.readline()
    f.write(b'{"execute": "qmp_capabilities"}\n'); f.flush()
    f.readline()
    return s, f


def qmp_latency(path, n=500):
    s, f = qmp_client(path)
    xs = []
    for _ in range(n):
        t0 = time.perf_counter()
        f.write(b'{"execute": "query-status"}\n'); f.flush()
        while b'"return"' not in f.readline():
            pass
        xs.append((time.perf_counter() - t0) * 1e6)
    s.close()
    return statistics.median(xs)


def qmp_rate(path, n=5000):
    s, f = qmp_client(path)
    t0 = time.perf_counter()
    f.write(b'{"execute": "query-status"}\n' * n); f.flush()
    got = 0
    while got < n:
        if b'"return"' in f.readline():
            got += 1
    rate = n / (time.perf_counter() - t0)
    s.close()
    return rate


def main():
    results = {}
    for name, kind in (("raw", Raw), ("vt", Vtarget)):
        with tempfile.TemporaryDirectory(prefix="vtbe-", dir="/tmp") as tmp:
            t = kind(tmp)
            try:
                results[name] = {
                    "mbps1": statistics.median(throughput(t, 1) for _ in range(3)),
                    "ping": ping_latency(t),
                    "qmp": qmp_latency(t.qmp),
                    "rate": qmp_rate(t.qmp),
                }
                if name == "vt":
                    results[name]["mbps16"] = statistics.median(throughput(t, 16) for _ in range(3))
            finally:
                t.close()
    raw, vt = results["raw"], results["vt"]
    print(f"{'serial, 1 MiB stream, 1 reader (MB/s)':44} {vt['mbps1']:10.2f} {raw['mbps1']:10.2f} {vt['mbps1'] / raw['mbps1']:7.2f} >= 0.9")
    print(f"{'serial, 1 MiB stream, 16 readers (MB/s)':44} {vt['mbps16']:10.2f} {raw['mbps1']:10.2f} {vt['mbps16'] / raw['mbps1']:7.2f} >= 0.8")
    print(f"{'serial ping->pong round trip p50 (us)':44} {vt['ping'][0]:10.0f} {raw['ping'][0]:10.0f} {'+%.0f' % (vt['ping'][0] - raw['ping'][0]):>7}")
    print(f"{'serial ping->pong round trip p99 (us)':44} {vt['ping'][1]:10.0f} {raw['ping'][1]:10.0f} {'+%.0f' % (vt['ping'][1] - raw['ping'][1]):>7}")
    print(f"{'QMP query-status round trip p50 (us)':44} {vt['qmp']:10.0f} {raw['qmp']:10.0f} {'+%.0f' % (vt['qmp'] - raw['qmp']):>7} <= +50")
    print(f"{'QMP commands/s, 5000 pipelined':44} {vt['rate']:10.0f} {raw['rate']:10.0f} {vt['rate'] / raw['rate']:7.2f} >= 10000")


if __name__ == "__main__":
    main()
