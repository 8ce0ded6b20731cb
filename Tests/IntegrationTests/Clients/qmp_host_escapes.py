"""What a compromised QEMU could do to the host's files through QMP, tried.

Run as `vtarget run ... -- python3 qmp_host_escapes.py HOSTDIR`: VTARGET_QMP is
the proxy; HOSTDIR is a world-writable host directory (below /tmp) holding a
world-readable file `hostname` and nothing else. Each attempt prints
`NAME: ok` or `NAME: error CLASS DESC`; `migrate-unix: connected` when QEMU
reached the socket this script listens on in HOSTDIR. The lines go to
HOSTDIR/../results (stdout is shared with the target's serial output). The
caller decides what must have happened, and checks the host for files.
"""
import os, socket, sys, time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from qmp_attempts import Attempts

host = sys.argv[1]
qmp = Attempts(os.path.join(os.path.dirname(host), "results"))
call, report = qmp.call, qmp.report

call("dump-tmp", "dump-guest-memory", paging=False, protocol=f"file:/tmp/{os.path.basename(os.path.dirname(host))}-dump")
call("dump-host-dir", "dump-guest-memory", paging=False, protocol=f"file:{host}/dump")
call("screendump", "screendump", filename=f"{host}/shot.ppm")
call("screendump-tmp", "screendump", filename=f"/tmp/{os.path.basename(os.path.dirname(host))}-shot.ppm")
call("memory-backend-file", "object-add", **{"qom-type": "memory-backend-file", "id": "vt-escape-mem",
     "mem-path": f"/dev/shm/{os.path.basename(os.path.dirname(host))}-mem", "size": 1 << 20})
call("blockdev-add", "blockdev-add", driver="file", **{"node-name": "vt-escape-leak", "filename": f"{host}/hostname", "read-only": True})

listener = socket.socket(socket.AF_UNIX)
listener.bind(f"{host}/migrate.sock")
os.chmod(f"{host}/migrate.sock", 0o777)
listener.listen(1)
listener.settimeout(0.1)
call("migrate-unix", "migrate", uri=f"unix:{host}/migrate.sock")
connected = False
deadline = time.time() + 5
while time.time() < deadline:
    try:
        conn, _ = listener.accept()
        connected = bool(conn.recv(4096))
        conn.close()
        break
    except socket.timeout:
        status = call(None, "query-migrate").get("return", {}).get("status")
        if status in ("failed", "completed", "cancelled"):
            report(f"migrate-unix: status {status}")
            break
report("migrate-unix: " + ("connected" if connected else "not connected"))
