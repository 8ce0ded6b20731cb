"""Two qemu.qmp clients on one vtarget QMP proxy, plus a client sending garbage.

Run as `vtarget run ... -- python qmp_two_clients.py`: VTARGET_QMP is the proxy.
Exit 0 when every check holds.
"""
import asyncio, json, os, socket, sys
from qemu.qmp import QMPClient, ExecuteError


async def main():
    path = os.environ["VTARGET_QMP"]
    a, b = QMPClient("a"), QMPClient("b")
    await a.connect(path)
    await b.connect(path)

    # Interleaved commands from both: each gets its own replies.
    ra, rb = await asyncio.gather(*(c.execute("query-status") for c in (a, b)))
    assert ra["status"] == "running" and rb["status"] == "running", (ra, rb)
    many = await asyncio.gather(*([a.execute("query-name") for _ in range(25)] + [b.execute("query-status") for _ in range(25)]))
    assert all(r.get("name") for r in many[:25]) and all(r["status"] == "running" for r in many[25:]), many

    # Errors come back to the client that caused them, as QMP errors.
    try:
        await a.execute("no-such-command")
        raise AssertionError("no error")
    except ExecuteError as e:
        assert e.error_class == "CommandNotFound", e.error_class

    # A raw client sending garbage gets a QMP error; the others are untouched.
    raw = socket.socket(socket.AF_UNIX)
    raw.connect(path)
    f = raw.makefile("rwb")
    greeting = json.loads(f.readline())
    assert "QMP" in greeting, greeting
    f.write(b'{"execute": "query-status"}\n'); f.flush()
    err = json.loads(f.readline())
    assert err["error"]["class"] == "CommandNotFound", err   # not negotiated yet
    f.write(b"this is not json }\n"); f.flush()
    err = json.loads(f.readline())
    assert err["error"]["class"] == "GenericError", err
    f.write(b'{"execute": "qmp_capabilities", "id": "x1"}\n'); f.flush()
    ok = json.loads(f.readline())
    assert ok == {"return": {}, "id": "x1"}, ok
    assert (await b.execute("query-status"))["status"] == "running"

    # Events reach every client: stop and cont produce STOP and RESUME.
    async def first(client, name):
        with client.listener(name) as listener:
            return await listener.get()
    wa = asyncio.create_task(first(a, "STOP"))
    wb = asyncio.create_task(first(b, "STOP"))
    await asyncio.sleep(0.1)
    await a.execute("stop")
    ea, eb = await asyncio.wait_for(asyncio.gather(wa, wb), 5)
    assert ea["event"] == eb["event"] == "STOP"
    await b.execute("cont")

    # The proxy answers repeated status queries itself, but never stale: what
    # one client changes, the other's very next query-status shows.
    for _ in range(20):
        assert (await a.execute("query-status"))["status"] == "running"
        assert (await a.execute("query-status"))["status"] == "running"
        await b.execute("stop")
        assert (await a.execute("query-status"))["status"] == "paused"
        assert (await b.execute("query-status"))["status"] == "paused"
        await b.execute("cont")
        assert (await a.execute("query-status"))["status"] == "running"
    # Through HMP too, which the proxy cannot read: any other command counts as a change.
    await b.execute("human-monitor-command", {"command-line": "stop"})
    assert (await a.execute("query-status"))["status"] == "paused"
    await b.execute("human-monitor-command", {"command-line": "cont"})
    assert (await a.execute("query-status"))["status"] == "running"
    raw.close()
    await a.disconnect()
    await b.disconnect()
    print("qmp proxy: two clients ok")


asyncio.run(main())
