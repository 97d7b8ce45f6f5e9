"""`lfafs profiles`: the embedded profiles, one line each."""

from __future__ import annotations

import subprocess
import sys

from lfafs.platform import DEFAULT_PROFILE, embedded_names


def test_profiles_lists_each_embedded_profile_on_one_line():
    r = subprocess.run([sys.executable, "-m", "lfafs", "profiles"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [line.split()[0] for line in lines] == embedded_names()
    by_name = {line.split()[0]: line for line in lines}
    assert "176 CPUs" in by_name["vera"] and "1536 GB" in by_name["vera"]
    assert "(default)" in by_name[DEFAULT_PROFILE] and "(default)" not in by_name["fvp"]
