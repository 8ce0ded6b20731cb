"""Reads a vtarget JUnit report with junitparser, a real JUnit consumer, and
checks it against what the test expects: argv[1] the report, argv[2] the
number of failures, argv[3:] testcase names that must be present."""
import sys
from junitparser import JUnitXml, Failure

xml = JUnitXml.fromfile(sys.argv[1])
cases = [c for suite in xml for c in suite]
names = [c.name for c in cases]
failed = [c for c in cases if any(isinstance(r, Failure) for r in c.result)]
assert len(failed) == int(sys.argv[2]), f"{len(failed)} failures: {[c.name for c in failed]}"
for n in sys.argv[3:]:
    assert n in names, f"no testcase {n!r} in {names}"
for c in failed:
    assert c.system_out, f"failure {c.name} has no serial output attached"
print("junit ok:", names)
