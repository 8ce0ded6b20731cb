#!/usr/bin/env python3
"""Record/replay benchmark on the checksum sample (lm3s6965evb): wall time
from start to the line answering the last typed input, for a plain run and
for a recorded one (`--record`), and the replay of that recording (`vtarget
replay`, to its end). The same input, paced the same way, in every run.
Median and range over ROUNDS runs each."""
import glob, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VT = os.environ.get("VTARGET", os.path.join(ROOT, ".build/release/vtarget"))
FW = os.path.join(ROOT, "firmware-samples/build")
ROUNDS = int(os.environ.get("ROUNDS", "5"))
LINES = ["line%02d" % i for i in range(20)]
SPEC = """apiVersion: qemu.kubetarget.dev/v1alpha1
kind: QemuVirtualTarget
metadata: {name: bench}
spec:
  qemuConfig:
    machine: lm3s6965evb
    drives: [{name: firmware, type: pflash, source: {configMap: {name: lm3s6965evb-checksum-firmware}}}]
    devices: [{name: uart0, type: serial}]
"""


# The sample prints at each line's \r, before counting its \n.
def run(spec, extra, env):
    typing = "; ".join("printf '%s\\r\\n'; sleep 0.05" % l for l in LINES)
    cmd = [VT, "run", "-f", spec, "-f", os.path.join(FW, "lm3s6965evb-checksum-firmware.yaml"), "--until", "sum %d " % (sum(len(l) + 2 for l in LINES) - 1),
           "--timeout", "120s"] + extra + ["--", "sh", "-c", "(sleep 0.3; %s; sleep 5) | socat -u - UNIX-CONNECT:$VTARGET_SERIAL_UART0" % typing]
    t = time.monotonic()
    # No pipes: the typist's sleep outlives vtarget and would hold them open.
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    took = time.monotonic() - t
    if r.returncode != 0:
        sys.exit("run failed (%d): %s" % (r.returncode, " ".join(cmd)))
    return took


def fmt(xs):
    return "median %.3f s (%.3f..%.3f)" % (statistics.median(xs), min(xs), max(xs))


def main():
    work = tempfile.mkdtemp(prefix="vt-bench-replay-")
    env = dict(os.environ, VTARGET_RUNTIME_DIR=os.path.join(work, "run"))
    spec = os.path.join(work, "bench.yaml")
    open(spec, "w").write(SPEC)
    try:
        plain, recorded, replayed, sizes = [], [], [], []
        for i in range(ROUNDS):
            plain.append(run(spec, [], env))
            out = os.path.join(work, "b%d" % i)
            recorded.append(run(spec, ["--record", out], env))
            bundle = glob.glob(os.path.join(out, "*.vtb"))[0]
            sizes.append(os.path.getsize(bundle))
            t = time.monotonic()
            r = subprocess.run([VT, "replay", bundle], env=env, capture_output=True, text=True)
            replayed.append(time.monotonic() - t)
            if r.returncode != 0:
                sys.exit("replay failed (%d): %s" % (r.returncode, r.stderr))
        print("record/replay, checksum sample on lm3s6965evb, %d lines typed 50 ms apart, %d rounds:" % (len(LINES), ROUNDS))
        print("  plain run to the last answer:    " + fmt(plain))
        print("  recorded run to the last answer: " + fmt(recorded) + ", ratio %.2f" % (statistics.median(recorded) / statistics.median(plain)))
        print("  replay of the recording:         " + fmt(replayed))
        print("  bundle size: median %d bytes" % statistics.median(sizes))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
