"""Which host files and processes a compromised QEMU can name through QMP.

Run as `vtarget run ... -- python3 qmp_host_files.py RESULTS`: VTARGET_QMP is
the proxy. Each attempt is a read-only `blockdev-add` of a host path: the host
name, the password file, and /proc/PID/cmdline of this script (a host process
outside QEMU's pid namespace). Lines `NAME: ok` or `NAME: error CLASS DESC`
go to RESULTS (stdout is shared with the target's serial output).
"""
import os, sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from qmp_attempts import Attempts

qmp = Attempts(sys.argv[1])
for i, (name, path) in enumerate([("etc-hostname", "/etc/hostname"), ("etc-passwd", "/etc/passwd"),
                                  ("host-pid", f"/proc/{os.getpid()}/cmdline")]):
    qmp.call(name, "blockdev-add", driver="file", **{"node-name": f"vt-host-file-{i}", "filename": path, "read-only": True})
