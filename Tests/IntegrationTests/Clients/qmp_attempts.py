"""One QMP session through vtarget's proxy (VTARGET_QMP) whose attempts are
reported as lines `NAME: ok` or `NAME: error CLASS DESC` in a results file:
the scripts using it share stdout with the target's serial output.
"""
import json, os, socket


class Attempts:
    def __init__(self, results_path):
        self.results = open(results_path, "w")
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(os.environ["VTARGET_QMP"])
        self.f = sock.makefile("rwb")
        assert "QMP" in json.loads(self.f.readline())
        self.call(None, "qmp_capabilities")

    def report(self, line):
        self.results.write(line + "\n")
        self.results.flush()

    def call(self, name, command, **arguments):
        """The reply (events skipped); reported when NAME is given."""
        self.f.write(json.dumps({"execute": command, "arguments": arguments}).encode() + b"\n")
        self.f.flush()
        while True:
            reply = json.loads(self.f.readline())
            if "event" in reply:
                continue
            if name:
                self.report(f"{name}: ok" if "return" in reply else f"{name}: error {reply['error']['class']} {reply['error']['desc']}")
            return reply
