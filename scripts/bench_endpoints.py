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
        end = time.time() + 60
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


def qmp_round_trip(f, command):
    t0 = time.perf_counter()
    f.write(command); f.flush()
    while b'"return"' not in f.readline():
        pass
    return (time.perf_counter() - t0) * 1e6


def qmp_latencies(raw_path, vt_path, command, n=1000):
    """p50 round trips, raw and through vtarget taken in turn, so this
    machine's noise falls on both alike."""
    (rs, rf), (vs, vf) = qmp_client(raw_path), qmp_client(vt_path)
    raw, vt = [], []
    for _ in range(n):
        raw.append(qmp_round_trip(rf, command))
        vt.append(qmp_round_trip(vf, command))
    rs.close(); vs.close()
    return statistics.median(raw), statistics.median(vt)


def qmp_rate(path, command, n=5000):
    s, f = qmp_client(path)
    t0 = time.perf_counter()
    f.write(command * n); f.flush()
    got = 0
    while got < n:
        if b'"return"' in f.readline():
            got += 1
    rate = n / (time.perf_counter() - t0)
    s.close()
    return rate


# query-status is answered by vtarget while nothing has changed (no event, no
# other command since QEMU last answered it); query-iothreads, like any command
# outside that read-only set, goes to QEMU every time: the proxy's own cost.
# BENCH_SERIAL=0: the QMP figures only (a quick run).
SERIAL = os.environ.get("BENCH_SERIAL", "1") != "0"
ROUNDS = int(os.environ.get("BENCH_QMP_ROUNDS", "3"))
STATUS = b'{"execute": "query-status"}\n'
FORWARDED = b'{"execute": "query-iothreads"}\n'


def print_serial(raw, vt):
    print(f"{'serial, 1 MiB stream, 1 reader (MB/s)':44} {vt['mbps1']:10.2f} {raw['mbps1']:10.2f} {vt['mbps1'] / raw['mbps1']:7.2f} >= 0.9")
    print(f"{'serial, 1 MiB stream, 16 readers (MB/s)':44} {vt['mbps16']:10.2f} {raw['mbps1']:10.2f} {vt['mbps16'] / raw['mbps1']:7.2f} >= 0.8")
    print(f"{'serial ping->pong round trip p50 (us)':44} {vt['ping'][0]:10.0f} {raw['ping'][0]:10.0f} {'+%.0f' % (vt['ping'][0] - raw['ping'][0]):>7}")
    print(f"{'serial ping->pong round trip p99 (us)':44} {vt['ping'][1]:10.0f} {raw['ping'][1]:10.0f} {'+%.0f' % (vt['ping'][1] - raw['ping'][1]):>7}")


def main():
    results = {}
    with tempfile.TemporaryDirectory(prefix="vtbe-", dir="/tmp") as raw_tmp, \
         tempfile.TemporaryDirectory(prefix="vtbe-", dir="/tmp") as vt_tmp:
        raw = Raw(raw_tmp)
        try:
            results["raw"] = {"mbps1": statistics.median(throughput(raw, 1) for _ in range(3)), "ping": ping_latency(raw)} if SERIAL else {}
            vt = Vtarget(vt_tmp)
            try:
                results["vt"] = {
                    "mbps1": statistics.median(throughput(vt, 1) for _ in range(3)),
                    "mbps16": statistics.median(throughput(vt, 16) for _ in range(3)),
                    "ping": ping_latency(vt),
                } if SERIAL else {}
                # Rounds, each a p50 of 1000 round trips or one pipelined burst,
                # raw and vtarget in turn: the figures are the rounds' median and range.
                for name, command in (("status", STATUS), ("forwarded", FORWARDED)):
                    for side in ("raw", "vt"):
                        results[side][name], results[side][name + "_rate"] = [], []
                    for _ in range(ROUNDS):
                        r, v = qmp_latencies(raw.qmp, vt.qmp, command)
                        results["raw"][name].append(r)
                        results["vt"][name].append(v)
                        results["raw"][name + "_rate"].append(qmp_rate(raw.qmp, command))
                        results["vt"][name + "_rate"].append(qmp_rate(vt.qmp, command))
            finally:
                vt.close()
        finally:
            raw.close()
    raw, vt = results["raw"], results["vt"]
    print(f"{'':44} {'vtarget':>10} {'raw QEMU':>10} {'ratio/+':>7} goal")
    if SERIAL:
        print_serial(raw, vt)
    med = statistics.median
    def rng(xs, fmt="{:.0f}"):
        return f"{fmt.format(med(xs))} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"
    def added(v, r):
        """vtarget minus raw, per round (each round measured both in turn)."""
        return [a - b for a, b in zip(v, r)]
    def ratios(v, r):
        return [a / b for a, b in zip(v, r)]
    print(f"QMP, median (range) over {ROUNDS} rounds:")
    print(f"{'QMP query-status round trip p50 (us)':44} {rng(vt['status']):>18} {rng(raw['status']):>18} {rng(added(vt['status'], raw['status']), '{:+.0f}'):>20} <= +50")
    print(f"{'QMP query-status/s, 5000 pipelined':44} {rng(vt['status_rate']):>18} {rng(raw['status_rate']):>18} {rng(ratios(vt['status_rate'], raw['status_rate']), '{:.2f}'):>20} >= 10000")
    print(f"{'QMP forwarded (query-iothreads) p50 (us)':44} {rng(vt['forwarded']):>18} {rng(raw['forwarded']):>18} {rng(added(vt['forwarded'], raw['forwarded']), '{:+.0f}'):>20} <= +50")
    print(f"{'QMP forwarded/s, 5000 pipelined':44} {rng(vt['forwarded_rate']):>18} {rng(raw['forwarded_rate']):>18} {rng(ratios(vt['forwarded_rate'], raw['forwarded_rate']), '{:.2f}'):>20} >= 0.9")


if __name__ == "__main__":
    main()
