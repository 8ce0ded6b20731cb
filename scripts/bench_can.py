#!/usr/bin/env python3
"""CAN bus benchmark: frames/s and latency through vtarget's bus hub with 2
and 8 socketcand members (one sender, the rest receivers), raw sockets on the
bus's unix socket. The bus belongs to a `vtarget run` of the seed example,
whose STM32 is taken off the bus so only the hub (in its own process,
`vtarget can serve`) is measured. Also a bus host's start as a target
starts it (`vtarget can serve BUS --namespace NS`): time until it serves
(its bus.json is there) and the CPU it used by then."""
import glob, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VT = os.environ.get("VTARGET", os.path.join(ROOT, ".build/release/vtarget"))
FW = os.path.join(ROOT, "firmware-samples/build")


def member(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    f = s.makefile("rb")
    def expect():
        buf = b""
        while not buf.endswith(b">"):
            buf += s.recv(1)
    expect(); s.sendall(b"< open default >"); expect(); s.sendall(b"< rawmode >"); expect()
    return s


def run(path, members, frames):
    sender = member(path)
    receivers = [member(path) for _ in range(members - 1)]
    counts = [0] * len(receivers)
    latencies = []
    sent_at = {}  # only the paced latency frames
    def recv(i, s):
        buf = b""
        while counts[i] < frames:
            chunk = s.recv(1 << 16)
            if not chunk:
                return
            buf += chunk
            n = buf.count(b">")
            if i == 0 and n and sent_at:
                # Latency sampled from the newest frame of each read: parsing
                # every frame would make this reader the slow member it measures.
                now = time.perf_counter()
                last = buf[:buf.rfind(b">")].rsplit(b"<", 1)[-1].split()
                if len(last) >= 4:
                    seq = int(last[3][:8], 16)
                    if seq in sent_at:
                        latencies.append((now - sent_at[seq]) * 1e6)
            counts[i] += n
            buf = buf[buf.rfind(b">") + 1:]
    threads = [threading.Thread(target=recv, args=(i, s)) for i, s in enumerate(receivers)]
    for t in threads:
        t.start()
    def frame(seq):
        return b"< send 123 4 %02x %02x %02x %02x >" % (seq >> 24 & 255, seq >> 16 & 255, seq >> 8 & 255, seq & 255)
    # Throughput: batches, never more than a window ahead of the slowest
    # receiver, so no reader falls 64 KiB behind and is dropped as slow
    # (a frame is ~42 bytes as a receiver gets it: 1,000 of them are ~41 KiB).
    t0 = time.perf_counter()
    batch, window, seq = 250, 1000, 0
    measured = frames - 2000
    deadline = time.perf_counter() + 60
    while seq < measured and time.perf_counter() < deadline:
        while seq - min(counts) > window and time.perf_counter() < deadline:
            time.sleep(0.0002)
        end = min(seq + batch, measured)
        sender.sendall(b"".join(frame(n) for n in range(seq, end)))
        seq = end
    while min(counts) < measured and time.perf_counter() < deadline:
        time.sleep(0.0005)
    elapsed = time.perf_counter() - t0
    delivered = sum(counts)
    # Latency: single frames, 1 ms apart, on an otherwise idle bus.
    for n in range(measured, frames):
        sent_at[n] = time.perf_counter()
        sender.sendall(frame(n))
        time.sleep(0.001)
    for t in threads:
        t.join(30)
    for s in [sender] + receivers:
        s.close()
    latencies.sort()
    complete = sum(counts) == frames * len(receivers)
    if not latencies:
        return delivered / elapsed, float("nan"), float("nan"), complete
    return delivered / elapsed, latencies[len(latencies) // 2], latencies[max(0, int(len(latencies) * 0.99) - 1)], complete


def host_start(runs):
    """A bus host started alone, as CANBusHost starts one: wall time until
    it serves and its CPU time (user + system) by then, from wait4."""
    walls, cpus = [], []
    with tempfile.TemporaryDirectory(prefix="vtbh-", dir="/tmp") as tmp:
        env = dict(os.environ, VTARGET_RUNTIME_DIR=tmp)
        for _ in range(runs + 1):
            t0 = time.perf_counter()
            p = subprocess.Popen([VT, "can", "serve", "hostbench", "--namespace", "default"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            record = os.path.join(tmp, "bus-hostbench", "bus.json")
            end = time.time() + 10
            while not os.path.exists(record):
                if time.time() > end:
                    sys.exit("bench: the bus host did not serve")
                time.sleep(0.0005)
            wall = time.perf_counter() - t0
            p.send_signal(signal.SIGINT)
            _, _, usage = os.wait4(p.pid, 0)
            p.returncode = 0
            walls.append(wall)
            cpus.append(usage.ru_utime + usage.ru_stime)
            shutil.rmtree(os.path.dirname(record), ignore_errors=True)
    return walls[1:], cpus[1:]


def main():
    walls, cpus = host_start(int(os.environ.get("BENCH_RUNS", "20")))
    ms = lambda xs: f"{statistics.median(xs) * 1000:10.1f} {min(xs) * 1000:6.1f}-{max(xs) * 1000:.1f}"
    print(f"{'CAN bus host start -> serving (ms)':44} {ms(walls)}")
    print(f"{'CAN bus host CPU, start to exit (ms)':44} {ms(cpus)}")
    with tempfile.TemporaryDirectory(prefix="vtbc-", dir="/tmp") as tmp:
        env = dict(os.environ, VTARGET_RUNTIME_DIR=tmp)
        p = subprocess.Popen([VT, "run", "-f", os.path.join(ROOT, "examples/seed/stm32f4-qemu.yaml"),
                              "-f", os.path.join(FW, "stm32f4-firmware.yaml")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            end = time.time() + 20
            while not glob.glob(os.path.join(tmp, "bus-default", "bus.json")):
                if time.time() > end:
                    sys.exit("bench: no bus")
                time.sleep(0.01)
            path = os.path.join(tmp, "bus-default", "socketcand.sock")
            subprocess.run([VT, "can", "fault", "default", "--member", "stm32f4-qemu/can0", "--bus-off"], env=env, check=True, capture_output=True)
            for members, frames in ((2, 60000), (8, 20000)):
                rate, p50, p99, complete = run(path, members, frames)
                print(f"{'CAN, %d members, frames/s delivered' % members:44} {rate:10.0f} {'':>10} {'':>7} >= 100000" + ("" if complete else "  (INCOMPLETE)"))
                print(f"{'CAN, %d members, latency p50 / p99 (us)' % members:44} {p50:10.0f} {p99:10.0f} {'':>7} p99 <= 1000")
        finally:
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
