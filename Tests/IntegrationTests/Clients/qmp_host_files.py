"""Which host files and processes a compromised QEMU can name through QMP.

Run as `vtarget run ... -- python3 qmp_host_files.py RESULTS`: VTARGET_QMP is
the proxy. Each attempt is a read-only `blockdev-add` of a host path: the host
name, the password file, and /proc/PID/cmdline of this script (a host process
outside QEMU's pid namespace). Lines `NAME: ok` or `NAME: error CLASS DESC`
go to RESULTS (stdout is shared with the target's serial output).
"""
import json, os, socket, sys

results = open(sys.argv[1], "w")
qmp = socket.socket(socket.AF_UNIX)
qmp.connect(os.environ["VTARGET_QMP"])
f = qmp.makefile("rwb")


def call(name, command, **arguments):
    f.write(json.dumps({"execute": command, "arguments": arguments}).encode() + b"\n")
    f.flush()
    while True:
        reply = json.loads(f.readline())
        if "event" in reply:
            continue
        if name:
            line = f"{name}: ok" if "return" in reply else f"{name}: error {reply['error']['class']} {reply['error']['desc']}"
            results.write(line + "\n")
            results.flush()
        return reply


assert "QMP" in json.loads(f.readline())
call(None, "qmp_capabilities")
for i, (name, path) in enumerate([("etc-hostname", "/etc/hostname"), ("etc-passwd", "/etc/passwd"),
                                  ("host-pid", f"/proc/{os.getpid()}/cmdline")]):
    call(name, "blockdev-add", driver="file", **{"node-name": f"vt-host-file-{i}", "filename": path, "read-only": True})
