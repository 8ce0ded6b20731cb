#!/usr/bin/env python3
"""vtarget benchmarks: each figure beside raw QEMU measured in the same run.

Start-up: process start -> banner line on stdout over N runs, for
`qemu-system-arm -serial stdio` and for `vtarget run`; `vtarget render` as a
whole process; `vtarget run` peak RSS (VmHWM) at the moment the banner shows;
`vtarget apply --wait` -> Ready under a private supervisor (whole CLI), and
`apply` then `wait`, each beside raw QEMU start -> banner on the same board.
Every timing is the median with its range (min-max) over its runs.
"""
import os, shutil, statistics, subprocess, sys, tempfile, time

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
    if pid is None:
        sys.exit("bench: no QEMU child found")
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
    """A QEMU child of pid (of any of its threads), or None: a few small
    reads (the threads' children lists), cheap enough to poll while the
    start being timed runs; a thread or child may end while it looks."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids = f.read().split()
        except OSError:
            continue
        for c in kids:
            try:
                with open(f"/proc/{c}/cmdline", "rb") as g:
                    if b"qemu-system" in g.read():
                        return int(c)
            except OSError:
                pass
    return None


def reread_binary(path=None):
    """Drops vtarget's binary from the page cache (after a sync), so that
    every process maps it as one read from disk would: a just-linked
    binary's pages, as the linker left them in the page cache, mapped
    ~6 MiB more of its text per process (PSS 31 against 25 MiB for a
    `vtarget run` of a VM, measured 2026-12-02)."""
    subprocess.run(["sync"], check=False)
    fd = os.open(os.path.realpath(path or VT), os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def median_ms(xs):
    return statistics.median(xs) * 1000.0


def spread(xs):
    """min-max in ms, the range beside a median."""
    return f"{min(xs) * 1000:.1f}-{max(xs) * 1000:.1f}"


def q1_ms(xs):
    """The lower quartile in ms: on a loaded machine the runs that were not
    preempted, closer to what the code costs than the median."""
    return statistics.quantiles(xs, n=4)[0] * 1000.0 if len(xs) > 1 else xs[0] * 1000.0


HEADER = (f"{'figure':46} {'vtarget':>9} {'q1':>7} {'range':>13} {'raw QEMU':>9} {'q1':>7} {'range':>13} "
          f"{'ratio':>6} {'q1 ratio':>8} goal")


def row(name, vt_xs, raw_xs=None, goal=""):
    """One figure: medians (ms), lower quartiles and ranges over the runs,
    and the ratios to raw QEMU (of medians, of lower quartiles) when there is one."""
    v = median_ms(vt_xs)
    if raw_xs:
        r = median_ms(raw_xs)
        return (f"{name:46} {v:9.1f} {q1_ms(vt_xs):7.1f} {spread(vt_xs):>13} {r:9.1f} {q1_ms(raw_xs):7.1f} {spread(raw_xs):>13} "
                f"{v / r:6.2f} {q1_ms(vt_xs) / q1_ms(raw_xs):8.2f} {goal}")
    return f"{name:46} {v:9.1f} {q1_ms(vt_xs):7.1f} {spread(vt_xs):>13} {'':>9} {'':>7} {'':>13} {'':>6} {'':>8} {goal}"


TARGET = """apiVersion: qemu.kubetarget.dev/v1alpha1
kind: QemuVirtualTarget
metadata: {{name: {name}}}
spec:
  qemuConfig:
    machine: lm3s6965evb
    drives:
      - {{name: firmware, type: pflash, source: {{configMap: {{name: lm3s6965evb-firmware, key: firmware.elf}}}}}}
    devices:
      - {{name: uart0, type: serial}}
  readiness: {{device: uart0, pattern: "echo ready", timeout: {timeout}}}
"""


def target_yaml(name, timeout="60s"):
    """One lm3s6965evb target on the sample firmware's ConfigMap, Ready at its banner."""
    return TARGET.format(name=name, timeout=timeout)


def standby_pids(work):
    """The standby shims (`vtarget --standby-shim`) of the supervisor whose state is under `work`."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"\0--standby-shim\0" not in f.read():
                    continue
            if os.readlink(f"/proc/{pid}/cwd").startswith(work):
                out.append(int(pid))
        except OSError:
            pass
    return out


def settle(work, timeout=2.0):
    """Waits (at most `timeout`) until the supervisor's standby shim is there
    and asleep, its warm-up done: no timed step then shares a core with it."""
    def cpu(pid):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[11]) + int(fields[12])
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            pids = standby_pids(work)
            if pids:
                before = [cpu(p) for p in pids]
                time.sleep(0.03)
                after = [cpu(p) for p in pids]
                if before == after and all(state == "S" for state, _ in after):
                    return
            else:
                time.sleep(0.02)
        except OSError:
            pass


def apply_to_ready(runs, standby=True):
    """`apply --wait` -> Ready, and `apply` then `wait --for condition=Ready`,
    one lm3s6965evb target at a time under a private supervisor, interleaved
    with raw QEMU start -> banner on the same board. With `standby`, each
    start finds the supervisor's standby shim ready, as an idle supervisor
    has it; without, the supervisor runs with VTARGET_STANDBY_SHIM=0."""
    work = tempfile.mkdtemp(prefix="vtba-")
    os.chmod(work, 0o711)  # as root, QEMU runs as another uid and must reach rt/ below
    env = dict(os.environ, VTARGET_RUNTIME_DIR=work + "/rt", VTARGET_STATE_DIR=work + "/st")
    if not standby:
        env["VTARGET_STANDBY_SHIM"] = "0"
    def vt(*args):
        return subprocess.run([VT, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    def quiet():
        if standby:
            settle(work)
    raw = ["qemu-system-arm", "-M", "lm3s6965evb", "-nodefaults", "-display", "none",
           "-kernel", os.path.join(FW, "lm3s6965evb.elf"), "-serial", "stdio"]
    vt("apply", "-f", os.path.join(FW, "lm3s6965evb-firmware.yaml"))
    wait_t, two_t, raw_t = [], [], []
    try:
        for i in range(runs + 1):
            path = f"{work}/t{i}.yaml"
            with open(path, "w") as f:
                f.write(target_yaml(f"t{i}"))
            quiet()
            t0 = time.perf_counter()
            vt("apply", "--wait", "--timeout", "30s", "-f", path)
            t = time.perf_counter() - t0
            vt("delete", "-f", path)
            quiet()
            t0 = time.perf_counter()
            vt("apply", "-f", path)
            vt("wait", f"t{i}", "--for", "condition=Ready", "--timeout", "30s")
            t2 = time.perf_counter() - t0
            vt("delete", "-f", path)
            quiet()
            r = time_to_banner(raw)[0]
            if i > 0:  # the first is the warm-up
                wait_t.append(t)
                two_t.append(t2)
                raw_t.append(r)
    finally:
        subprocess.run([VT, "daemon", "stop", "--stop-instances"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    return wait_t, two_t, raw_t


def main():
    if not os.path.exists(VT):
        sys.exit(f"bench: {VT} not built (make bench builds it)")
    reread_binary()
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

    wait_t, two_t, lm_raw_t = apply_to_ready(RUNS)
    cold_t, _, cold_raw_t = apply_to_ready(RUNS, standby=False)

    print(HEADER)
    print(row("start -> banner, seed example (ms)", vt_t, raw_t, "<= 1.25"))
    print(f"{'start -> banner, p90 (ms)':46} {sorted(vt_t)[int(0.9 * RUNS) - 1] * 1000:9.1f} {'':>7} {'':>13} {sorted(raw_t)[int(0.9 * RUNS) - 1] * 1000:9.1f}")
    print(f"{'sandbox cost: run minus run --no-sandbox (ms)':46} {median_ms(vt_t) - median_ms(open_t):9.1f} "
          f"{q1_ms(vt_t) - q1_ms(open_t):7.1f} {'':>13} {'':>9} {'':>7} {'':>13} {'':>6} {'':>8} <= 5")
    print(row("run --no-sandbox start -> banner (ms)", open_t, raw_t))
    print(row("apply --wait -> Ready, whole CLI (ms)", wait_t, lm_raw_t, "<= 1.5"))
    print(row("apply; wait --for condition=Ready (ms)", two_t, lm_raw_t))
    print(row("apply --wait, no standby shim (ms)", cold_t, cold_raw_t))
    print(row("vtarget render, whole process (ms)", render_t, None, "<= 20"))
    if rss:
        print(f"{'vtarget run peak RSS at banner, max (MB)':46} {max(rss):9.1f} {'':>7} {'':>13} {'':>9} {'':>7} {'':>13} {'':>6} {'':>8} <= 30")
    print(f"{'idle CPU after banner, QEMU (% of a core)':46} {idle_cpu_share(vt, env, child_qemu):9.1f} {'':>7} {'':>13} {idle_cpu_share(raw):9.1f} {'':>7} {'':>13} {'':>6} {'':>8} near 0")
    print(f"(medians, lower quartiles and min-max over {RUNS} runs; the seed on stm32vldiscovery, apply on lm3s6965evb, each beside raw QEMU on its board)")
    print(f"(load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    leftover = os.listdir(runtime)
    if leftover:
        print(f"bench: files left in {runtime}: {leftover}")
    os.rmdir(runtime)


if __name__ == "__main__":
    main()
