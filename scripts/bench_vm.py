#!/usr/bin/env python3
"""VM benchmarks with the busybox test guest (scripts/build-test-guest.sh),
each figure beside raw QEMU measured in the same run:

- process start -> first console byte and -> the guest's ready line
  ("vtarget-guest: ready": seed read, DHCP lease, HTTP up), for
  `qemu-system-x86_64` by hand (a qcow2 overlay on the same image, a NoCloud
  seed made with genisoimage, user-mode net with the same forward) and for
  `vtarget run -f vm.yaml` of the same VM;
- a warm claim from a VirtualTargetPool of that VM (`vtarget claim`, whole
  CLI) against a cold boot (`vtarget run` start -> ready line), and the
  release that restores the member's snapshot (`vtarget release`);
- preparation of a VM with three disks (a containerDisk overlay, two
  emptyDisks) and a NoCloud seed: `vtarget run` start -> QEMU's exec, read as
  QEMU's start time in /proc (clock ticks: 10 ms steps), nothing added to
  vtarget for it;
- memory per VM, as PSS (smaps_rollup) at the ready line: `vtarget run`
  beside its QEMU, and a pool member's shim beside its QEMU.

The first console byte has a loop of its own, FIRST_RUNS starts (default
31) that end at that byte: QEMU's own exec -> first byte under TCG spreads
over 105-165 ms here, run to run, so a median of a handful of boots moved
the ratio by +-0.05 between runs of one binary.

Medians and ranges (min-max) over VM_RUNS boots and CLAIM_RUNS claims.
VTARGET picks the binary (default: the release build); VTARGET_OLD names a
second (an older build) whose boots are interleaved with the first's, for a
before/after in one run on a loaded machine.
"""
import os, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import HEADER, ROOT, VT, child_qemu, reread_binary, row, spread, median_ms  # noqa: E402

RUNS = int(os.environ.get("VM_RUNS", "5"))
FIRST_RUNS = int(os.environ.get("FIRST_RUNS", "31"))
OLD = os.environ.get("VTARGET_OLD")
CLAIMS = int(os.environ.get("CLAIM_RUNS", "10"))
READY = b"vtarget-guest: ready"
IMAGE = "vtarget-bench/busybox:1"

VM = """apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: bb}
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        cpu: {cores: 1}
        memory: {guest: 256Mi}
        devices:
          disks:
            - {name: root, disk: {bus: virtio}}
            - {name: cloudinit, disk: {bus: virtio}}
          interfaces: [{name: default, masquerade: {}, ports: [{port: 8080}]}]
      networks: [{name: default, pod: {}}]
      volumes:
        - {name: root, containerDisk: {image: %s}}
        - name: cloudinit
          cloudInitNoCloud:
            userData: |
              #!/bin/sh
              echo hello-from-user-data
""" % IMAGE

# Three disks and a seed: what preparation makes before QEMU starts.
VM3 = VM.replace("name: bb}", "name: bb3}").replace(
    "            - {name: cloudinit, disk: {bus: virtio}}\n",
    "            - {name: scratch, disk: {bus: virtio}}\n            - {name: data, disk: {bus: virtio}}\n"
    "            - {name: cloudinit, disk: {bus: virtio}}\n").replace(
    "        - name: cloudinit\n",
    "        - {name: scratch, emptyDisk: {capacity: 1Gi}}\n        - {name: data, emptyDisk: {capacity: 2Gi}}\n"
    "        - name: cloudinit\n")

POOL = """apiVersion: kubetarget.dev/v1alpha1
kind: VirtualTargetPool
metadata: {name: vms}
spec:
  targetRef: {kind: VirtualMachine, name: bb}
  minReady: 1
  maxInstances: 1
  readiness: {device: console, pattern: "vtarget-guest: ready", timeout: 600s}
"""


def stop(p):
    """Ends a vtarget or QEMU the bench started: SIGTERM, SIGKILL after 20 s."""
    p.terminate()
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()

def first_byte(argv, env=None):
    """Seconds from process start to the first console byte; the process is then stopped."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
    try:
        chunk = os.read(p.stdout.fileno(), 65536)
        took = time.perf_counter() - t0
    finally:
        stop(p)
    if not chunk:
        sys.exit(f"bench_vm: {argv[0]} wrote nothing")
    return took


def boot(argv, env=None, memory=None):
    """Seconds from process start to the ready line;
    with `memory` (a list), appends (PSS of the process, PSS of its QEMU) in KiB at the ready line."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
    seen = b""
    try:
        while READY not in seen:
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            seen += chunk
        ready = time.perf_counter() - t0
        if memory is not None and READY in seen:
            qemu = qemu_below(p.pid)
            memory.append((pss_kib(p.pid), pss_kib(qemu) if qemu else 0))
    finally:
        stop(p)
    if READY not in seen:
        sys.exit(f"bench_vm: no ready line from {argv[0]}:\n{seen[-2000:].decode(errors='replace')}")
    return ready




def descendants(pid):
    """Every process below pid, from /proc's parent links."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def qemu_below(pid):
    for c in descendants(pid):
        try:
            with open(f"/proc/{c}/comm") as f:
                if f.read().startswith("qemu-system"):
                    return c
        except OSError:
            pass
    return None


def pss_kib(pid):
    """Proportional set size: shared pages divided among their users."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def prepare(argv, env):
    """Seconds from `vtarget run` start to its QEMU's exec, seen by polling
    its children every 0.5 ms for QEMU's command line (`child_qemu`; reading
    all of /proc each time, as `qemu_below` does, took milliseconds of the
    CPU the start needs): /proc's start time counts in clock ticks (10 ms
    here), too coarse for a few milliseconds. The run then goes on to the
    first console byte."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
    try:
        qemu = None
        while p.poll() is None:
            qemu = child_qemu(p.pid)
            if qemu is not None:
                break
            time.sleep(0.0005)
        took = time.perf_counter() - t0
        if qemu is None:
            sys.exit(f"bench_vm: {argv} ended before QEMU started")
        os.read(p.stdout.fileno(), 1)
    finally:
        stop(p)
    return took


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def raw_argv(work, disk):
    """The same VM by hand: an overlay on the image, a NoCloud seed, user net with the forward."""
    overlay = os.path.join(work, "raw-root.qcow2")
    if os.path.exists(overlay):
        os.unlink(overlay)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", disk, "-F", "qcow2", overlay], check=True)
    seed = os.path.join(work, "seed")
    iso = os.path.join(work, "raw-seed.iso")
    if not os.path.exists(iso):
        os.makedirs(seed, exist_ok=True)
        with open(os.path.join(seed, "meta-data"), "w") as f:
            f.write("instance-id: bb\nlocal-hostname: bb\n")
        with open(os.path.join(seed, "user-data"), "w") as f:
            f.write("#!/bin/sh\necho hello-from-user-data\n")
        subprocess.run(["genisoimage", "-quiet", "-input-charset", "utf-8", "-volid", "cidata", "-joliet", "-rock",
                        "-output", iso, seed], check=True)
    # The devices vtarget's plan has (`vtarget render`): the agent's port, VGA with VNC on a socket.
    return ["qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", "max", "-smp", "1", "-m", "256M",
            "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
            "-drive", f"file={overlay},format=qcow2,if=none,id=root", "-device", "virtio-blk-pci,drive=root,bootindex=1",
            "-drive", f"file={iso},format=raw,if=none,id=seed,readonly=on", "-device", "virtio-blk-pci,drive=seed,bootindex=2",
            "-netdev", f"user,id=n0,net=10.0.2.0/24,hostname=bb,hostfwd=tcp:127.0.0.1:{free_port()}-:8080",
            "-device", "virtio-net-pci,netdev=n0",
            "-chardev", f"socket,id=qga,path={work}/raw-qga.sock,server=on,wait=off",
            "-device", "virtio-serial-pci", "-device", "virtserialport,chardev=qga,name=org.qemu.guest_agent.0",
            "-device", "VGA", "-vnc", f"unix:{work}/raw-vnc.sock"]


def main():
    if not os.path.exists(VT):
        sys.exit(f"bench_vm: {VT} not built (make bench builds it)")
    guest = subprocess.run(["bash", os.path.join(ROOT, "scripts/build-test-guest.sh")], check=True,
                           capture_output=True, text=True, env=dict(os.environ, VTARGET_GUEST_ARM64="0")).stdout.strip()
    disk = os.path.join(guest, "x86_64/disk.qcow2")
    reread_binary()
    if OLD:
        reread_binary(OLD)
    work = tempfile.mkdtemp(prefix="vtbvm-")
    os.chmod(work, 0o711)  # as root, QEMU runs as another uid and must reach rt/ below
    env = dict(os.environ, VTARGET_RUNTIME_DIR=work + "/rt", VTARGET_STATE_DIR=work + "/st")

    def vt(*args, check=True):
        return subprocess.run([VT, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=check)

    try:
        vt("image", "import", IMAGE, disk)
        spec = os.path.join(work, "vm.yaml")
        with open(spec, "w") as f:
            f.write(VM)
        run = [VT, "run", "-f", spec]
        # Interleaved, so load on the machine falls on both alike; the first pair warms the caches.
        raw_ready, vt_ready, run_memory, old_ready = [], [], [], []
        for i in range(RUNS + 1):
            rr = boot(raw_argv(work, disk))
            vr = boot(run, env, run_memory if i > 0 else None)
            orr = boot([OLD] + run[1:], env) if OLD else None
            if i > 0:
                raw_ready.append(rr); vt_ready.append(vr)
                if OLD:
                    old_ready.append(orr)

        # The first console byte, on its own and many times (see FIRST_RUNS); the first pair warms the caches.
        raw_byte, vt_byte, old_byte = [], [], []
        for i in range(FIRST_RUNS + 1):
            r = first_byte(raw_argv(work, disk))
            v = first_byte(run, env)
            o = first_byte([OLD] + run[1:], env) if OLD else None
            if i > 0:
                raw_byte.append(r); vt_byte.append(v)
                if OLD:
                    old_byte.append(o)

        # Three disks and a seed: start -> QEMU's exec (the first run warms the caches).
        spec3 = os.path.join(work, "vm3.yaml")
        with open(spec3, "w") as f:
            f.write(VM3)
        preparations, old_preparations = [], []
        for i in range(RUNS + 1):
            p = prepare([VT, "run", "-f", spec3], env)
            o = prepare([OLD, "run", "-f", spec3], env) if OLD else None
            if i > 0:
                preparations.append(p)
                if OLD:
                    old_preparations.append(o)

        # The pool: one member, claimed and released CLAIMS times.
        pool = os.path.join(work, "pool.yaml")
        with open(pool, "w") as f:
            f.write(VM.replace("runStrategy: Always", "runStrategy: Halted") + "---\n" + POOL)
        vt("apply", "-f", pool)
        t0 = time.perf_counter()
        member = vt("claim", "vms", "-o", "name", "--timeout", "900s").stdout.strip().split("/")[-1]
        first_claim = time.perf_counter() - t0
        import json
        info = json.loads(vt("get", "instances", member, "-o", "json").stdout)
        info = next((i for i in info.get("items", []) if i["metadata"]["name"] == member), info)
        status = info.get("status", {})
        shim_pid, qemu_pid = status.get("pid"), status.get("qemuPid")
        member_memory = (pss_kib(shim_pid), pss_kib(qemu_pid)) if shim_pid and qemu_pid else None
        vt("release", member)
        claims, releases = [], []
        for _ in range(CLAIMS):
            t0 = time.perf_counter()
            got = vt("claim", "vms", "-o", "name", "--timeout", "60s").stdout.strip().split("/")[-1]
            claims.append(time.perf_counter() - t0)
            if got != member:
                sys.exit(f"bench_vm: claimed {got}, expected the warm member {member}")
            t0 = time.perf_counter()
            out = vt("release", member).stdout
            releases.append(time.perf_counter() - t0)
            if "snapshot restored" not in out:
                sys.exit(f"bench_vm: release did not restore the snapshot: {out}")
        # The pool first: while it names the VM, the VM cannot go.
        vt("delete", "vtp", "vms")
        vt("delete", "vm", "bb")
    finally:
        subprocess.run([VT, "daemon", "stop", "--stop-instances"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([VT, "image", "rm", IMAGE], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)

    print(HEADER)
    print(row("VM start -> first console byte (ms)", vt_byte, raw_byte, "<= 1.1"))
    print(row("VM start -> guest ready line (ms)", vt_ready, raw_ready, "<= 1.1"))
    print(row("pool: warm claim, whole CLI (ms)", claims))
    print(row("pool: release (loadvm of the snapshot) (ms)", releases))
    print(row("VM, 3 disks + seed: start -> QEMU exec (ms)", preparations, None, "<= 100"))
    if OLD:
        print(f"VTARGET_OLD = {OLD}, its boots interleaved with the above:")
        print(row("  old: VM start -> first console byte (ms)", old_byte, raw_byte, "<= 1.1"))
        print(row("  old: VM start -> guest ready line (ms)", old_ready, raw_ready, "<= 1.1"))
        print(row("  old: 3 disks + seed: start -> QEMU exec (ms)", old_preparations, None, "<= 100"))
    mib = lambda kib: f"{kib / 1024:.1f} MiB"
    run_vt = sorted(m[0] for m in run_memory)[len(run_memory) // 2]
    run_qemu = sorted(m[1] for m in run_memory)[len(run_memory) // 2]
    print(f"{'memory per VM, PSS: vtarget run / its QEMU':46} {mib(run_vt):>13} / {mib(run_qemu)} (medians at the ready line)")
    if member_memory:
        print(f"{'memory per VM, PSS: pool shim / its QEMU':46} {mib(member_memory[0]):>13} / {mib(member_memory[1])} (member at its claim)")
    else:
        print(f"{'memory per VM, PSS: pool shim / its QEMU':46} (no shim or QEMU pid in `get instances -o json`)")
    cold = median_ms(vt_ready)
    warm = median_ms(claims)
    print(f"{'cold boot / warm claim (medians)':46} {cold / warm:9.0f}x {'':>13} {'':>9} {'':>13} {'':>6} >= 100x")
    print(f"{'first claim: member boot + savevm (ms)':46} {first_claim * 1000:9.1f}")
    print(f"(first console byte: medians and min-max over {FIRST_RUNS} starts of each; the rest over {RUNS} boots and {CLAIMS} claims; busybox guest, q35 under TCG, 256 MiB; "
          f"cold boot = vtarget run start -> ready line, range {spread(vt_ready)} ms)")
    print(f"(load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
