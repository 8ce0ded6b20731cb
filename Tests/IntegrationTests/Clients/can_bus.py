"""Two python-can clients on bus "vehicle" with the can-pair targets (node A
counts 100#NN, node B answers id+1). Run as the CMD of `vtarget run`:
VTARGET_CAN_VEHICLE is the socketcand endpoint; VT is the vtarget binary."""
import os, socket, subprocess, time
import can
import sys


def step(name):
    print(f"can bus: {name}", file=sys.stderr, flush=True)

host, port = os.environ["VTARGET_CAN_VEHICLE"].split(":")
VT = os.environ["VT"]


def bus():
    return can.Bus(interface="socketcand", channel="vehicle", host=host, port=int(port))


def collect(b, seconds):
    out, end = [], time.time() + seconds
    while time.time() < end:
        m = b.recv(0.05)
        if m is not None:
            out.append((m.arbitration_id, bytes(m.data)))
    return out


a, b = bus(), bus()

step("order")
# Every frame reaches every member, in order: b's buffered stream starts
# with exactly what a saw (b is read after a, so it holds a few more).
time.sleep(0.3)
collect(a, 0.05); collect(b, 0.05)
sa = collect(a, 1.5)
sb = collect(b, 0.5)
assert len(sa) >= 6, f"too few frames: {len(sa)}"
# Align on b's first frame (frames are unique within this window: ids and counters).
k = sa.index(sb[0]) if sb and sb[0] in sa else -1
assert k >= 0 and len(sa) - k >= 6, f"no common stretch:\n{sa[:8]}\n{sb[:8]}"
assert sb[:len(sa) - k] == sa[k:], f"clients saw different streams:\n{sa[k:k + 8]}\n{sb[:8]}"
counts = [d[0] for i, d in sa if i == 0x100]
assert all((y - x) % 256 == 1 for x, y in zip(counts, counts[1:])), f"node A's counter skipped or reordered: {counts}"
assert {d for i, d in sa if i == 0x101} <= {d for i, d in sa if i == 0x100} | {bytes([counts[0] - 1 & 0xFF])}, "B's answers do not match A's frames"
assert any(i == 0x101 for i, _ in sa), "node B never answered"

step("client frames")
# Frames from a client reach the other client and the targets; B answers them too.
for n in range(20):
    a.send(can.Message(arbitration_id=0x300 + n, data=[n], is_extended_id=False))
got = [m for m in collect(b, 1.0) if 0x300 <= m[0] < 0x400]
sent = [(0x300 + n, bytes([n])) for n in range(20)]
assert [m for m in got if m in sent] == sent, f"client frames lost or reordered: {got[:10]}"
assert any(m == (0x301 + n, bytes([n])) for m in got for n in range(20)), "node B did not answer a client's frame"
b.send(can.Message(arbitration_id=0x12345678, data=[0xEE], is_extended_id=True))
def seen(bus_, predicate, seconds=2.0):
    end = time.time() + seconds
    while time.time() < end:
        m = bus_.recv(0.1)
        if m is not None and predicate(m):
            return True
    return False


assert seen(a, lambda m: m.arbitration_id == 0x12345678 and m.is_extended_id), "extended id lost"

step("malformed")
# Malformed input from a client is counted and skipped; the bus carries on.
raw = socket.create_connection((host, int(port)))
raw.recv(64)
raw.sendall(b"< open vehicle >"); raw.recv(64)
raw.sendall(b"< rawmode >"); raw.recv(64)
step("raw connected")
raw.sendall(b"< send zzz 1 00 >< send 123 9 1 >garbage< bogus >< send 7AB 1 42 >")
assert seen(b, lambda m: m.arbitration_id == 0x7AB), "the good frame after garbage was lost"
step("stats")
r = subprocess.run([VT, "can", "fault", "vehicle"], capture_output=True, text=True)
assert r.returncode == 0, r.stderr
stats = r.stdout
assert any("malformed=" in l and "malformed=0" not in l for l in stats.splitlines()), stats

step("stalled")
# A member that stops reading is dropped; the bus is not stalled. The MCUs
# go bus-off meanwhile (their UARTs take SLCAN far slower than this flood).
import threading
for node in ("node-a/can0", "node-b/can0"):
    subprocess.run([VT, "can", "fault", "vehicle", "--member", node, "--bus-off"], check=True, capture_output=True)
raw.close()
collect(a, 0.3); collect(b, 0.3)
# On the unix socket: TCP's auto-tuned buffers would swallow the whole flood in
# the kernel, where vtarget's 64 KiB bound per member never comes into play.
stalled = socket.socket(socket.AF_UNIX)
stalled.connect(os.environ["VTARGET_CAN_VEHICLE_SOCKET"])
stalled.recv(64); stalled.sendall(b"< open vehicle >"); stalled.recv(64); stalled.sendall(b"< rawmode >"); stalled.recv(64)
FLOOD = 30000
received = []
def reader():
    end = time.time() + 60
    while len(received) < FLOOD and time.time() < end:
        m = b.recv(0.5)
        if m is not None and m.arbitration_id == 0x555:
            received.append(bytes(m.data))
t = threading.Thread(target=reader)
t.start()
for n in range(FLOOD):
    a.send(can.Message(arbitration_id=0x555, data=[n >> 8 & 0xFF, n & 0xFF, 0, 0, 0, 0, 0, 0], is_extended_id=False))
t.join()
assert received == [bytes([n >> 8 & 0xFF, n & 0xFF, 0, 0, 0, 0, 0, 0]) for n in range(FLOOD)], f"b got {len(received)} of {FLOOD}, or out of order"
stalled.settimeout(5)
try:
    while stalled.recv(1 << 20):
        pass
except socket.timeout:
    raise AssertionError("the stalled member was not dropped")
for node in ("node-a/can0", "node-b/can0"):
    subprocess.run([VT, "can", "fault", "vehicle", "--member", node, "--bus-on"], check=True, capture_output=True)

step("faults")
# Fault injection changes delivery: node A's frames dropped, then restored.
subprocess.run([VT, "can", "fault", "vehicle", "--member", "node-a/can0", "--drop", "1"], check=True, capture_output=True)
collect(b, 0.3)
assert not [m for m in collect(b, 1.0) if m[0] == 0x100], "drop=1 still delivered node A's frames"
subprocess.run([VT, "can", "fault", "vehicle", "--member", "node-a/can0", "--drop", "0"], check=True, capture_output=True)
assert [m for m in collect(b, 1.0) if m[0] == 0x100], "node A's frames did not come back"

a.shutdown(); b.shutdown()
print("can bus: ok")
