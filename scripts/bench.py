#!/usr/bin/env python3
"""vtarget benchmarks: each figure beside raw QEMU measured in the same run.

Start-up: process start -> banner line on stdout, medians over N runs, for
`qemu-system-arm -serial stdio` and for `vtarget run`; `vtarget render` as a
whole process; `vtarget run` peak RSS (VmHWM) at the moment the banner shows.
"""
import os, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VT = os.environ.get("VTARGET", os.path.join(ROOT, ".build/release/vtarget"))
FW = os.path.join(ROOT, "firmware-samples/build")
RUNS = int(os.environ.get("BENCH_RUNS", "30"))
BANNER = b"echo ready"


def time_to_banner(argv, env=None, sample_rss=False):
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
    seen = b""
    rss = None
    while BANNER not in seen:
        chunk = os.read(p.stdout.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
    elapsed = time.perf_counter() - t0
    if sample_rss:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        rss = int(line.split()[1]) / 1024.0
        except OSError:
            pass
    p.terminate()
    p.wait()
    if BANNER not in seen:
        sys.exit(f"bench: no banner from {argv[0]}")
    return elapsed, rss


def idle_cpu_share(argv, env=None, qemu_of=None):
    """Share of one core QEMU uses over 2 s once the banner is out."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
    seen = b""
    while BANNER not in seen:
        chunk = os.read(p.stdout.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
    pid = qemu_of(p.pid) if qemu_of else p.pid
    def cpu():
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    time.sleep(0.5)
    before = cpu()
    time.sleep(2.0)
    share = (cpu() - before) / 2.0
    p.terminate()
    p.wait()
    return share * 100.0


def child_qemu(pid):
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            for c in f.read().split():
                with open(f"/proc/{c}/cmdline", "rb") as g:
                    if b"qemu-system" in g.read():
                        return int(c)
    sys.exit("bench: no QEMU child found")


def median_ms(xs):
    return statistics.median(xs) * 1000.0


def main():
    if not os.path.exists(VT):
        sys.exit(f"bench: {VT} not built (make bench builds it)")
    fw = os.path.join(FW, "stm32vldiscovery.elf")
    runtime = tempfile.mkdtemp(prefix="vtb-")
    env = dict(os.environ, VTARGET_RUNTIME_DIR=runtime)
    raw = ["qemu-system-arm", "-M", "stm32vldiscovery", "-nodefaults", "-display", "none",
           "-kernel", fw, "-serial", "stdio"]
    vt = [VT, "run", "-f", os.path.join(ROOT, "examples/seed/stm32f4-qemu.yaml"),
          "-f", os.path.join(FW, "stm32f4-firmware.yaml")]
    render = [VT, "render", "-f", os.path.join(ROOT, "examples/seed/stm32f4-qemu.yaml"),
              "-f", os.path.join(FW, "stm32f4-firmware.yaml")]

    # Warm the page cache for both before measuring; interleave the runs so
    # load on the machine falls on both alike.
    time_to_banner(raw); time_to_banner(vt, env)
    raw_t, vt_t, rss, open_t = [], [], [], []
    for _ in range(RUNS):
        raw_t.append(time_to_banner(raw)[0])
        t, r = time_to_banner(vt, env, sample_rss=True)
        vt_t.append(t)
        if r is not None:
            rss.append(r)
        open_t.append(time_to_banner(vt + ["--no-sandbox"], env)[0])
    render_t = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        subprocess.run(render, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
        render_t.append(time.perf_counter() - t0)

    r, v = median_ms(raw_t), median_ms(vt_t)
    print(f"{'figure':44} {'vtarget':>10} {'raw QEMU':>10} {'ratio':>7} goal")
    print(f"{'start -> banner, median of %d (ms)' % RUNS:44} {v:10.1f} {r:10.1f} {v / r:7.2f} <= 1.25")
    print(f"{'start -> banner, p90 (ms)':44} {sorted(vt_t)[int(0.9 * RUNS) - 1] * 1000:10.1f} {sorted(raw_t)[int(0.9 * RUNS) - 1] * 1000:10.1f}")
    print(f"{'sandbox cost: run minus run --no-sandbox (ms)':44} {v - median_ms(open_t):10.1f} {'':>10} {'':>7} <= 5")
    print(f"{'vtarget render, whole process, median (ms)':44} {median_ms(render_t):10.1f} {'':>10} {'':>7} <= 20")
    if rss:
        print(f"{'vtarget run peak RSS at banner, max (MB)':44} {max(rss):10.1f} {'':>10} {'':>7} <= 30")
    print(f"{'idle CPU after banner, QEMU (% of a core)':44} {idle_cpu_share(vt, env, child_qemu):10.1f} {idle_cpu_share(raw):10.1f} {'':>7} near 0")
    leftover = os.listdir(runtime)
    if leftover:
        print(f"bench: files left in {runtime}: {leftover}")
    os.rmdir(runtime)


if __name__ == "__main__":
    main()
