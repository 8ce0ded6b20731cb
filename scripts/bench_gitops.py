#!/usr/bin/env python3
"""GitOps benchmarks (issue 16): whole `vtarget sync` processes.

- `sync DIR` of BENCH_SYNC_RESOURCES (default 200) resources, nothing changed:
  the median of BENCH_RUNS whole processes (the issue's bound: 200 ms). The
  resources are ConfigMaps, so that 200 QEMUs need not run; sync's work
  (read, validate, list, compare) is the same for every kind.
- `sync DIR --watch`: one target's file changed -> its instance restarted
  (a new uid, Running), the median of BENCH_RUNS changes (bound: 1 s).
"""
import json, os, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import FW, VT, target_yaml  # noqa: E402
RUNS = int(os.environ.get("BENCH_RUNS", "15"))
RESOURCES = int(os.environ.get("BENCH_SYNC_RESOURCES", "200"))

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm{i:03d}, labels: {{bench: sync}}}}\ndata: {{key: value-{i}}}\n"



def http(sock_path, path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: vtarget\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return json.loads(data.partition(b"\r\n\r\n")[2])


def vt(env, *args):
    return subprocess.run([VT, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True, text=True)


def watched(sock):
    for i in http(sock, "/v1/instances?namespace=default"):
        if i["name"] == "watched":
            return i
    return None


def main():
    if not os.path.exists(VT):
        sys.exit(f"bench: {VT} not built (make bench builds it)")
    work = tempfile.mkdtemp(prefix="vtbg-")
    os.chmod(work, 0o711)
    env = dict(os.environ, VTARGET_RUNTIME_DIR=work + "/rt", VTARGET_STATE_DIR=work + "/st")
    sock = work + "/rt/supervisor.sock"
    try:
        repo = work + "/repo"
        os.makedirs(repo)
        for i in range(RESOURCES):
            with open(f"{repo}/cm{i:03d}.yaml", "w") as f:
                f.write(CONFIGMAP.format(i=i))
        vt(env, "sync", repo)
        times = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            out = vt(env, "sync", repo, "--prune").stdout
            times.append(time.perf_counter() - t0)
            if out.count(" unchanged") != RESOURCES:
                sys.exit(f"bench: sync changed something: {out[:300]}")
        print(f"{'figure':60} {'ms':>8}")
        print(f"{f'sync of {RESOURCES} resources, nothing changed (whole process)':60} {statistics.median(times) * 1000:8.1f}"
              f"   (median of {RUNS}; min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}; bound 200)")

        board = work + "/boards"
        os.makedirs(board)
        subprocess.run(["cp", os.path.join(FW, "lm3s6965evb-firmware.yaml"), board + "/firmware.yaml"], check=True)
        with open(board + "/watched.yaml", "w") as f:
            f.write(target_yaml("watched", "30s"))
        w = subprocess.Popen([VT, "sync", board, "--watch", "--prune"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 60
            while time.time() < deadline and not ((i := watched(sock)) and i["phase"] == "Running"):
                time.sleep(0.02)
            latencies = []
            for n in range(RUNS):
                before = watched(sock)["uid"]
                t0 = time.perf_counter()
                with open(board + "/watched.yaml.tmp", "w") as f:
                    f.write(target_yaml("watched", f"{31 + n}s"))
                os.rename(board + "/watched.yaml.tmp", board + "/watched.yaml")
                deadline = time.time() + 20
                while time.time() < deadline:
                    i = watched(sock)
                    if i and i["uid"] != before and i["phase"] == "Running":
                        break
                    time.sleep(0.005)
                else:
                    sys.exit("bench: the watched instance did not restart within 20 s")
                latencies.append(time.perf_counter() - t0)
                time.sleep(0.3)
            print(f"{'sync --watch: file changed -> instance restarted (Running)':60} {statistics.median(latencies) * 1000:8.1f}"
                  f"   (median of {RUNS}; min {min(latencies) * 1000:.1f}, max {max(latencies) * 1000:.1f}; bound 1000)")
        finally:
            w.terminate()
            w.wait(timeout=10)
    finally:
        subprocess.run([VT, "daemon", "stop", "--stop-instances"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
