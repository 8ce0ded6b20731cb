#!/usr/bin/env python3
"""Supervisor benchmarks, beside raw QEMU measured in the same run.

- apply -> Ready for one target (whole CLI processes: `apply` then `wait
  --for condition=Ready`), against raw QEMU process start -> banner.
- BENCH_TARGETS (default 200) lm3s6965evb targets under one supervisor:
  supervisor RSS and idle CPU, the targets' idle CPU (QEMU and their shims),
  and `vtarget get instances` as a whole process.
"""
import json, os, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VT = os.environ.get("VTARGET", os.path.join(ROOT, ".build/release/vtarget"))
FW = os.path.join(ROOT, "firmware-samples/build")
RUNS = int(os.environ.get("BENCH_RUNS", "15"))
TARGETS = int(os.environ.get("BENCH_TARGETS", "200"))
TICK = os.sysconf("SC_CLK_TCK")

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
  readiness: {{device: uart0, pattern: "echo ready", timeout: 600s}}
---
"""


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


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


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


def main():
    if not os.path.exists(VT):
        sys.exit(f"bench: {VT} not built (make bench builds it)")
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
            t, idle = raw_banner()
            raw_t.append(t)
            raw_idle.append(idle)
            path = f"{work}/one-{i}.yaml"
            with open(path, "w") as f:
                f.write(TARGET.format(name=f"one{i}"))
            t0 = time.perf_counter()
            vt(env, "apply", "-f", path)
            vt(env, "wait", f"one{i}", "--for", "condition=Ready", "--timeout", "30s")
            apply_t.append(time.perf_counter() - t0)
            vt(env, "delete", "-f", path)
        r, a = statistics.median(raw_t) * 1000, statistics.median(apply_t) * 1000
        print(f"{'figure':52} {'vtarget':>10} {'raw QEMU':>10} {'ratio':>7}")
        print(f"{'apply -> Ready (whole CLI) vs QEMU start -> banner':52} {a:10.1f} {r:10.1f} {a / r:7.2f}   (ms, medians of {RUNS})")

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
            f.write(TARGET.format(name="victim"))
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

        # Many targets under one supervisor.
        sup_rss0 = rss_mb(sup)
        path = f"{work}/many.yaml"
        with open(path, "w") as f:
            for i in range(TARGETS):
                f.write(TARGET.format(name=f"m{i:03d}"))
        t0 = time.perf_counter()
        vt(env, "apply", "-f", path)
        deadline = time.time() + 900
        while time.time() < deadline:
            items = json.loads(vt(env, "get", "instances", "-o", "json").stdout)["items"]
            ready = sum(1 for i in items if i["status"]["phase"] == "Running" and i["status"]["conditions"][0]["status"] == "True")
            if ready == TARGETS:
                break
            time.sleep(1)
        else:
            sys.exit(f"bench: only {ready} of {TARGETS} targets became Ready")
        all_ready = time.perf_counter() - t0
        time.sleep(5)
        qemus = processes(lambda c: b"qemu-system" in c and work.encode() in c)
        shims = processes(lambda c: b"\0--shim\0" in c and b"\0-f\0" + work.encode() in c)
        s0, q0, h0 = cpu(sup), sum(cpu(p) for p in qemus), sum(cpu(p) for p in shims)
        time.sleep(10)
        s1, q1, h1 = cpu(sup), sum(cpu(p) for p in qemus), sum(cpu(p) for p in shims)
        sup_rss = rss_mb(sup)
        get_t = []
        for _ in range(10):
            t = time.perf_counter()
            vt(env, "get", "instances")
            get_t.append(time.perf_counter() - t)
        n = TARGETS
        print(f"{n} targets: all Ready after {all_ready:.1f} s ({len(qemus)} QEMUs, {len(shims)} shims)")
        budget = 60 + 0.2 * n
        print(f"{'supervisor RSS (MB)':52} {sup_rss:10.1f} {'':>10} {'':>7}   goal <= {budget:.0f} (60 + 0.2 per target); {sup_rss0:.1f} with none")
        print(f"{'supervisor idle CPU (% of a core)':52} {(s1 - s0) / 10 * 100:10.2f} {'':>10} {'':>7}   goal < 1")
        print(f"{'QEMU idle CPU per target (% of a core)':52} {(q1 - q0) / 10 * 100 / max(1, len(qemus)):10.3f} {statistics.median(raw_idle):10.3f}   near 0 (raw: one QEMU alone)")
        print(f"{'shim idle CPU per target (% of a core)':52} {(h1 - h0) / 10 * 100 / max(1, len(shims)):10.3f}")
        print(f"{'shim RSS per target (MB, not shared-adjusted)':52} {statistics.median([rss_mb(p) for p in shims]):10.1f}")
        print(f"{'vtarget get instances, %d instances (ms, median)' % n:52} {statistics.median(get_t) * 1000:10.1f} {'':>10} {'':>7}   goal <= 50")
        t0 = time.perf_counter()
        vt(env, "delete", "-f", path)
        print(f"{'delete of all %d (s)' % n:52} {time.perf_counter() - t0:10.1f}")
    finally:
        vt(env, "daemon", "stop", "--stop-instances", check=False)
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
