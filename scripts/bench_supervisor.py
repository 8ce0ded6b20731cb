#!/usr/bin/env python3
"""Supervisor benchmarks, beside raw QEMU measured in the same run.

- apply -> Ready for one target (whole CLI processes: `apply` then `wait
  --for condition=Ready`), against raw QEMU process start -> banner.
- VTARGET_BENCH_TARGETS (default 500) lm3s6965evb targets under one
  supervisor: all Ready, `vtarget get instances` as a whole process, idle CPU
  of the supervisor, the QEMUs and their shims, and memory by PSS (a shared
  page counted once across the processes sharing it) and private dirty
  pages, beside as many raw QEMUs (same board and firmware, booted to their
  banner) measured alone before. Every figure is a median with its range
  (over processes, or over repeated samples).
"""
import json, os, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import FW, ROOT, VT, reread_binary, settle, standby_pids, target_yaml  # noqa: E402
RUNS = int(os.environ.get("BENCH_RUNS", "15"))
TARGETS = int(os.environ.get("VTARGET_BENCH_TARGETS", os.environ.get("BENCH_TARGETS", "500")))
# Seconds of each idle-CPU sample, and how many samples.
IDLE_SECONDS, IDLE_SAMPLES = 4, 3
TICK = os.sysconf("SC_CLK_TCK")



POOL = """apiVersion: qemu.kubetarget.dev/v1alpha1
kind: QemuVirtualTarget
metadata: {{name: warm-{board}}}
spec:
  qemuConfig:
    machine: {machine}
    drives:
      - {{name: firmware, type: {kind}, source: {{configMap: {{name: {board}-firmware}}}}}}
    devices:
      - {{name: uart0, type: serial}}
  readiness: {{device: uart0, pattern: "echo ready", timeout: 30s}}
---
apiVersion: kubetarget.dev/v1alpha1
kind: VirtualTargetPool
metadata: {{name: {board}}}
spec: {{targetRef: {{name: warm-{board}}}, minReady: 2, maxInstances: 3}}
"""


def http(sock_path, method, path):
    """One request on the control socket, no process start: the supervisor's own time plus HTTP."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: vtarget\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n")[0]:
        sys.exit(f"bench: {method} {path}: {head[:80]!r} {body[:200]!r}")
    return json.loads(body)


def ping(sock_path, expect=b"pong"):
    """ping on a UART until `expect` comes back (the Cortex-M samples answer pong, the x86 one echoes)."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    s.sendall(b"ping\r")
    seen = b""
    while expect not in seen:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("bench: serial closed before pong")
        seen += chunk
    s.close()


def start_to_banner(argv, env=None):
    """Process start -> "echo ready" on its stdout; returns the process and the time."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
    seen = b""
    while b"echo ready" not in seen:
        chunk = os.read(p.stdout.fileno(), 4096)
        if not chunk:
            sys.exit(f"bench: no banner from {argv[0]}")
        seen += chunk
    return p, time.perf_counter() - t0


def cold_run_banner(env, spec, fwmap):
    p, elapsed = start_to_banner([VT, "run", "-f", spec, "-f", fwmap], env)
    p.terminate()
    p.wait()
    return elapsed


def vt(env, *args, check=True):
    return subprocess.run([VT, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=check, text=True)


def raw_banner():
    argv = ["qemu-system-arm", "-M", "lm3s6965evb", "-nodefaults", "-display", "none",
            "-kernel", os.path.join(FW, "lm3s6965evb.elf"), "-serial", "stdio"]
    p, elapsed = start_to_banner(argv)
    time.sleep(0.5)
    c0 = cpu(p.pid)
    time.sleep(3)
    idle = (cpu(p.pid) - c0) / 3 * 100
    p.terminate()
    p.wait()
    return elapsed, idle


def cpu(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except OSError:
        return 0.0


def memory(pid):
    """RSS, PSS and private dirty memory of a process in MiB (smaps_rollup):
    PSS divides each shared page among its sharers, so the PSS of every
    process adds up to what they take together. The page cache must be
    written back first (os.sync() before each measurement): the text of a binary built moments ago
    is dirty in the page cache, and smaps counts it as the process's dirty
    memory (measured: a Swift hello world linked a moment before showed
    1.5 MiB of its text as private dirty, 0 after a sync)."""
    out = {"Rss": 0.0, "Pss": 0.0, "Private_Dirty": 0.0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in out:
                    out[key] = int(rest.split()[0]) / 1024.0
    except OSError:
        pass
    return out


def mem_available_mb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def spread(xs, fmt="{:.1f}"):
    """Median and range: `m (lo-hi)`."""
    if not xs:
        return "-"
    return f"{fmt.format(statistics.median(xs))} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"


def idle_cpu(groups):
    """% of a core each group of pids uses, in IDLE_SAMPLES windows of IDLE_SECONDS."""
    samples = {name: [] for name in groups}
    for _ in range(IDLE_SAMPLES):
        before = {name: sum(cpu(p) for p in pids) for name, pids in groups.items()}
        time.sleep(IDLE_SECONDS)
        for name, pids in groups.items():
            samples[name].append((sum(cpu(p) for p in pids) - before[name]) / IDLE_SECONDS * 100)
    return samples


def raw_fleet(n, work):
    """n raw QEMUs booted to their banner (serial into a file each), measured, killed."""
    avail0 = mem_available_mb()
    elf = os.path.join(FW, "lm3s6965evb.elf")
    procs, t0 = [], time.perf_counter()
    for i in range(n):
        out = f"{work}/raw-{i}.out"
        procs.append((subprocess.Popen(["qemu-system-arm", "-M", "lm3s6965evb", "-nodefaults", "-display", "none",
                                        "-kernel", elf, "-serial", f"file:{out}"],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out))
    try:
        deadline = time.time() + 300
        waiting = list(procs)
        while waiting and time.time() < deadline:
            waiting = [(p, out) for p, out in waiting if not (os.path.exists(out) and b"echo ready" in open(out, "rb").read())]
            time.sleep(0.2)
        if waiting:
            sys.exit(f"bench: {len(waiting)} of {n} raw QEMUs showed no banner")
        booted = time.perf_counter() - t0
        time.sleep(2)
        os.sync()
        pids = [p.pid for p, _ in procs]
        mems = [memory(p) for p in pids]
        idle = idle_cpu({"qemu": pids})["qemu"]
        return {"booted": booted, "mems": mems, "idle": idle, "avail": avail0 - mem_available_mb()}
    finally:
        for p, out in procs:
            p.kill()
        for p, out in procs:
            p.wait()
            os.unlink(out)


def parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


def environ(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read()
    except OSError:
        return b""


def processes(marker):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if marker(cmd):
            out.append(int(p))
    return out


def many_targets(env, work, sock, sup):
    """VTARGET_BENCH_TARGETS targets under one supervisor, beside as many raw QEMUs measured alone first."""

    def private_by_kind(pid):
        """A shim's private dirty KiB by what holds it (/proc/PID/smaps): the vtarget
        binary's data, .bss and relocated read-only data; the malloc heap; thread
        stacks (the main one, and each anonymous mapping right above a one-page guard); shared
        libraries (with the .bss after each); the rest."""
        kinds = dict.fromkeys(("binary", "heap", "stacks", "libraries", "other"), 0)
        prev = None
        try:
            with open(f"/proc/{pid}/smaps") as f:
                lines = f.readlines()
        except OSError:
            return kinds
        for line in lines:
            p = line.split()
            if not p[0].endswith(":"):
                lo, hi = (int(x, 16) for x in p[0].split("-"))
                name = p[5] if len(p) > 5 else ""
                if name.endswith("/vtarget") or (not name and prev and prev[2].endswith("/vtarget") and prev[1] == lo):
                    kind = "binary"
                elif name == "[heap]":
                    kind = "heap"
                elif ".so" in name or (not name and prev and ".so" in prev[2] and prev[1] == lo):
                    kind = "libraries"
                elif name == "[stack]" or not name and prev and not prev[2] and prev[3] == "---p" and prev[1] - prev[0] == 4096 and prev[1] == lo:
                    kind = "stacks"
                else:
                    kind = "other"
                prev = (lo, hi, name, p[1])
            elif p[0] == "Private_Dirty:":
                kinds[kind] += int(p[1])
        return kinds

    n = TARGETS
    raw = raw_fleet(n, work)
    sup_mem0 = memory(sup)
    avail0 = mem_available_mb()
    path = f"{work}/many.yaml"
    with open(path, "w") as f:
        for i in range(n):
            f.write(target_yaml(f"m{i:03d}", "600s") + "---\n")
    t0 = time.perf_counter()
    vt(env, "apply", "-f", path)
    deadline = time.time() + 900
    ready = 0
    while time.time() < deadline:
        items = http(sock, "GET", "/v1/instances")
        ready = sum(1 for i in items if i.get("phase") == "Running" and i.get("ready"))
        if ready == n:
            break
        time.sleep(0.5)
    else:
        sys.exit(f"bench: only {ready} of {n} targets became Ready")
    all_ready = time.perf_counter() - t0
    time.sleep(3)
    os.sync()
    shims = [p for p in processes(lambda c: b"\0--shim\0" in c) if work.encode() in environ(p)]
    # Each QEMU is its shim's child (the sandbox may run it from a directory of its own).
    qemus = [p for p in processes(lambda c: b"qemu-system" in c) if parent(p) in set(shims)]
    idle = idle_cpu({"sup": [sup], "qemu": qemus, "shim": shims})
    get_t = []
    for _ in range(10):
        t = time.perf_counter()
        vt(env, "get", "instances")
        get_t.append((time.perf_counter() - t) * 1000)
    qm, sm, sup_mem = [memory(p) for p in qemus], [memory(p) for p in shims], memory(sup)
    fds, threads = len(os.listdir(f"/proc/{sup}/fd")), len(os.listdir(f"/proc/{sup}/task"))
    kinds = [private_by_kind(p) for p in shims]
    shim_threads = [len(os.listdir(f"/proc/{p}/task")) for p in shims if os.path.isdir(f"/proc/{p}/task")]
    used = avail0 - mem_available_mb()
    standby = [memory(p) for p in standby_pids(work)]
    total = sum(m["Pss"] for m in qm + sm + standby) + sup_mem["Pss"]
    raw_total = sum(m["Pss"] for m in raw["mems"])
    per = lambda ms, key, fmt="{:.1f}": spread([m[key] for m in ms], fmt)
    print(f"{n} targets: all Ready after {all_ready:.1f} s ({len(qemus)} QEMUs, {len(shims)} shims); "
          f"{n} raw QEMUs booted in {raw['booted']:.1f} s")
    print(f"{'figure (median (min-max))':52} {'vtarget':>24} {'raw QEMU':>24}")
    row = lambda name, v, r="": print(f"{name:52} {v:>24} {r:>24}")
    row("QEMU PSS per target (MiB)", per(qm, "Pss"), per(raw["mems"], "Pss"))
    row("QEMU private dirty per target (MiB)", per(qm, "Private_Dirty"), per(raw["mems"], "Private_Dirty"))
    row("QEMU RSS per target (MiB)", per(qm, "Rss"), per(raw["mems"], "Rss"))
    row("shim PSS per target (MiB, goal <= 2)", per(sm, "Pss", "{:.2f}"))
    row("shim private dirty per target (MiB, goal <= 1)", per(sm, "Private_Dirty", "{:.2f}"))
    row("shim RSS per target (MiB)", per(sm, "Rss"))
    for kind in ("binary", "heap", "stacks", "libraries", "other"):
        row(f"  shim private dirty: {kind} (KiB)", spread([k[kind] for k in kinds], "{:.0f}"))
    row("shim threads", spread(shim_threads, "{:.0f}"))
    row("supervisor PSS / private dirty (MiB)", f"{sup_mem['Pss']:.1f} / {sup_mem['Private_Dirty']:.1f}")
    row("supervisor PSS with no shim sharing its pages (MiB)", f"{sup_mem0['Pss']:.1f}")
    row(f"supervisor open fds / threads with {n}", f"{fds} / {threads}")
    row("standby shim PSS / private dirty (MiB)", " / ".join(f"{m['Pss']:.1f} / {m['Private_Dirty']:.1f}" for m in standby) or "none")
    row(f"total PSS, {n} targets (GiB)", f"{total / 1024:.2f}", f"{raw_total / 1024:.2f}")
    row(f"MemAvailable drop, {n} targets (GiB, with kernel)", f"{used / 1024:.2f}", f"{raw['avail'] / 1024:.2f}")
    row("supervisor idle CPU (% of a core, goal < 1)", spread(idle["sup"], "{:.2f}"))
    row(f"all {n} QEMUs idle CPU (% of a core)", spread(idle["qemu"], "{:.2f}"), spread(raw["idle"], "{:.2f}"))
    row(f"all {n} shims idle CPU (% of a core)", spread(idle["shim"], "{:.2f}"))
    row(f"vtarget get instances, {n} instances (ms)", spread(get_t), "")
    t0 = time.perf_counter()
    vt(env, "delete", "-f", path)
    row(f"delete of all {n} (s)", f"{time.perf_counter() - t0:.1f}")


def main():
    if not os.path.exists(VT):
        sys.exit(f"bench: {VT} not built (make bench builds it)")
    reread_binary()
    work = tempfile.mkdtemp(prefix="vtbs-")
    os.chmod(work, 0o711)  # as root, QEMU runs as another uid and must reach rt/ below
    env = dict(os.environ, VTARGET_RUNTIME_DIR=work + "/rt", VTARGET_STATE_DIR=work + "/st")
    fwmap = os.path.join(FW, "lm3s6965evb-firmware.yaml")
    vt(env, "apply", "-f", fwmap)
    sup = int(open(work + "/st/supervisor.lock").read().strip())
    try:
        # apply -> Ready, one target at a time, interleaved with raw QEMU.
        raw_t, raw_idle, apply_t = [], [], []
        for i in range(RUNS):
            # Each measured with the supervisor's standby shim idle (see bench.settle).
            settle(work)
            t, idle = raw_banner()
            raw_t.append(t)
            raw_idle.append(idle)
            path = f"{work}/one-{i}.yaml"
            with open(path, "w") as f:
                f.write(target_yaml(f"one{i}", "600s") + "---\n")
            settle(work)
            t0 = time.perf_counter()
            vt(env, "apply", "-f", path)
            vt(env, "wait", f"one{i}", "--for", "condition=Ready", "--timeout", "30s")
            apply_t.append(time.perf_counter() - t0)
            vt(env, "delete", "-f", path)
        r, a = statistics.median(raw_t) * 1000, statistics.median(apply_t) * 1000
        print(f"{'figure':52} {'vtarget':>10} {'raw QEMU':>10} {'ratio':>7}")
        print(f"{'apply -> Ready (whole CLI) vs QEMU start -> banner':52} {a:10.1f} {r:10.1f} {a / r:7.2f}   (ms, medians of {RUNS})")
        q = lambda xs: statistics.quantiles(xs, n=4)[0] * 1000
        print(f"{'  the same, lower quartiles':52} {q(apply_t):10.1f} {q(raw_t):10.1f} {q(apply_t) / q(raw_t):7.2f}   "
              f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")

        # Warm pools: claim -> usable serial, release, vs a cold run to banner,
        # on a Cortex-M board (boots in ~30 ms) and on an x86 PC (SeaBIOS first).
        sock = work + "/rt/supervisor.sock"
        for board, machine, kind, answer in (("mps2-an385", "mps2-an385", "pflash", b"pong"),
                                             ("x86-pc", "pc", "kernel", b"ping")):
            pool = f"{work}/pool-{board}.yaml"
            with open(pool, "w") as f:
                f.write(POOL.format(board=board, machine=machine, kind=kind))
            fwmap = os.path.join(FW, f"{board}-firmware.yaml")
            vt(env, "apply", "-f", pool, "-f", fwmap)
            cold_t, claim_cli, claim_api, release_cli, release_api = [], [], [], [], []
            for i in range(RUNS):
                cold_t.append(cold_run_banner(env, os.path.join(ROOT, f"examples/{board}.yaml"), fwmap))
                t0 = time.perf_counter()
                name = vt(env, "claim", board, "-o", "name").stdout.strip()
                ping(f"{work}/rt/ns-default/{name}/uart0.sock", answer)
                claim_cli.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                vt(env, "release", name)
                release_cli.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                inst = http(sock, "POST", f"/v1/pools/default/{board}/claim?timeout=30")
                claim_api.append(time.perf_counter() - t0)
                ping(f"{work}/rt/ns-default/{inst['name']}/uart0.sock", answer)
                t0 = time.perf_counter()
                http(sock, "POST", f"/v1/instances/default/{inst['name']}/release")
                release_api.append(time.perf_counter() - t0)
            c = statistics.median(cold_t) * 1000
            cc = statistics.median(claim_cli) * 1000
            print(f"{board}: {'claim -> pong (whole CLI) vs cold run -> banner':44} {cc:10.1f} {c:10.1f} {cc / c:7.3f}   goal <= 0.1 (ms)")
            print(f"{board}: {'claim inside the supervisor (HTTP, ms)':44} {statistics.median(claim_api) * 1000:10.2f} {'':>10} {'':>7}   goal <= 5")
            print(f"{board}: {'release = loadvm (whole CLI, ms)':44} {statistics.median(release_cli) * 1000:10.1f} {'':>10} {'':>7}   goal <= 20")
            print(f"{board}: {'release = loadvm (HTTP, ms)':44} {statistics.median(release_api) * 1000:10.2f} {'':>10} {'':>7}   goal <= 20")
            vt(env, "delete", "-f", pool)

        # A QEMU killed -> its death recorded (phase Failed), polled on the socket.
        victim = f"{work}/victim.yaml"
        with open(victim, "w") as f:
            f.write(target_yaml("victim", "600s") + "---\n")
        vt(env, "apply", "-f", victim)
        seen_t = []
        for i in range(5):
            vt(env, "wait", "victim", "--for", "condition=Ready", "--timeout", "30s")
            st = http(sock, "GET", "/v1/instances/default/victim")["instance"]
            t0 = time.perf_counter()
            os.kill(st["qemuPID"], 9)
            while http(sock, "GET", "/v1/instances/default/victim")["instance"]["phase"] in ("Running", "Terminating"):
                time.sleep(0.002)
            seen_t.append(time.perf_counter() - t0)
            http(sock, "POST", "/v1/instances/default/victim/start")
        print(f"{'QEMU SIGKILLed -> phase Failed recorded (ms, median of 5)':52} {statistics.median(seen_t) * 1000:10.1f} {'':>10} {'':>7}   goal <= 1000")
        vt(env, "delete", "-f", victim)

        many_targets(env, work, sock, sup)
    finally:
        vt(env, "daemon", "stop", "--stop-instances", check=False)
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
