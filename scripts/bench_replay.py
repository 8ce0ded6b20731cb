#!/usr/bin/env python3
"""Record/replay benchmark on the checksum sample (lm3s6965evb): wall time
from start to the line answering the last typed input, for a plain run and
for a recorded one (`--record`), and the replay of that recording (`vtarget
replay`, to its end). The same input, paced the same way, in every run.
Median and range over ROUNDS runs each. Then what a recording of a chatty
target costs: the sample's "trickle" mode streams numbered 64-byte lines at
about 1 KiB/s; the bundle of TRICKLE_SECONDS of it, recorded, scaled to a
minute, beside the serial output itself."""
import glob, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VT = os.environ.get("VTARGET", os.path.join(ROOT, ".build/release/vtarget"))
FW = os.path.join(ROOT, "firmware-samples/build")
ROUNDS = int(os.environ.get("ROUNDS", "5"))
LINES = ["line%02d" % i for i in range(20)]
TRICKLE_SECONDS = int(os.environ.get("TRICKLE_SECONDS", "30"))
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


def trickle(spec, out, env):
    """Bundle bytes and serial output bytes of TRICKLE_SECONDS of "trickle"."""
    log = os.path.join(out + "-serial.out")
    cmd = [VT, "run", "-f", spec, "-f", os.path.join(FW, "lm3s6965evb-checksum-firmware.yaml"), "--record", out,
           "--timeout", "%ds" % (TRICKLE_SECONDS + 60), "--", "sh", "-c",
           "(sleep 0.3; printf 'trickle\\r'; sleep %d) | socat -u - UNIX-CONNECT:$VTARGET_SERIAL_UART0" % TRICKLE_SECONDS]
    with open(log, "wb") as f:
        r = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.DEVNULL)
    if r.returncode != 0:
        sys.exit("trickle run failed (%d)" % r.returncode)
    bundle = glob.glob(os.path.join(out, "*.vtb"))[0]
    return os.path.getsize(bundle), os.path.getsize(log)


def fmt(xs):
    return "median %.3f s (%.3f..%.3f)" % (statistics.median(xs), min(xs), max(xs))


def main():
    work = tempfile.mkdtemp(prefix="vt-bench-replay-")
    # The sample ticks every 8 ms, so recorded input need not wait for
    # icount's 100 ms heartbeat: paced 5 ms apart (the default 150 ms is for
    # guests asleep without a timer, and would make this the pacing's bench).
    env = dict(os.environ, VTARGET_RUNTIME_DIR=os.path.join(work, "run"), VTARGET_RECORD_INPUT_GAP=os.environ.get("VTARGET_RECORD_INPUT_GAP", "5ms"))
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
        print("record/replay, checksum sample on lm3s6965evb, %d lines typed 50 ms apart, recorded input paced %s apart, %d rounds:"
              % (len(LINES), env["VTARGET_RECORD_INPUT_GAP"], ROUNDS))
        print("  plain run to the last answer:    " + fmt(plain))
        print("  recorded run to the last answer: " + fmt(recorded) + ", ratio %.2f" % (statistics.median(recorded) / statistics.median(plain)))
        print("  replay of the recording:         " + fmt(replayed))
        print("  bundle size: median %d bytes" % statistics.median(sizes))
        # One round: the size grows with time, not with the round.
        size, output = trickle(spec, os.path.join(work, "trickle"), env)
        per_minute = 60.0 / TRICKLE_SECONDS
        print("  streaming %.0f B/s of serial for %d s: bundle %.0f KiB per minute (the output alone: %.0f KiB per minute), ratio %.2f"
              % (output / TRICKLE_SECONDS, TRICKLE_SECONDS, size * per_minute / 1024, output * per_minute / 1024, size / output))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
