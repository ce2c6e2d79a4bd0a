import subprocess
import sys

from tests.standins.killswitch import KillSwitch


def test_kills_the_group_after_the_armed_occurrence_only():
    switch = KillSwitch()
    switch.record("POST /v2/pods")                       # before arming: does not count
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    switch.target(proc.pid)
    switch.arm("POST /v2/pods", occurrence=2)
    switch.record("POST /v2/pods")
    switch.record("PATCH /v2/pods/x")
    assert proc.poll() is None and switch.fired is None
    switch.record("POST /v2/pods")
    assert proc.wait(timeout=10) == -9
    assert switch.fired == "POST /v2/pods"
    assert switch.calls == ["POST /v2/pods", "POST /v2/pods", "PATCH /v2/pods/x", "POST /v2/pods"]
