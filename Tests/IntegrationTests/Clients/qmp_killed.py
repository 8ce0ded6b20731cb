"""QEMU killed under a qemu.qmp client of vtarget's proxy: the client's
commands fail with an error, promptly; nothing hangs. VTARGET_QMP is the
proxy; the QEMU pid comes from the instance record beside it."""
import asyncio, json, os, signal
from qemu.qmp import QMPClient


async def main():
    path = os.environ["VTARGET_QMP"]
    record = json.load(open(os.path.join(os.path.dirname(path), "instance.json")))
    client = QMPClient("victim")
    await client.connect(path)
    assert (await client.execute("query-status"))["status"] == "running"
    # Commands QEMU must answer itself (query-status may come from the proxy's cache).
    pending = [asyncio.ensure_future(client.execute("query-iothreads")) for _ in range(20)]
    os.kill(record["qemuPID"], signal.SIGKILL)
    failures = 0
    for p in pending + [asyncio.ensure_future(client.execute("query-iothreads"))]:
        try:
            await asyncio.wait_for(p, 5)
        except asyncio.TimeoutError:
            raise AssertionError("a command hung after QEMU died")
        except Exception:
            failures += 1
    assert failures >= 1, "no command failed although QEMU was killed"
    print("qmp killed: ok")


asyncio.run(main())
