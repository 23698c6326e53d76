"""Every test file under tests/ is collected: a folder pytest skips by default (``build``, ``dist``,
dot-folders...) or a file name outside ``python_files`` would otherwise drop out of CI silently."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_test_file_is_collected():
    files = {p.relative_to(REPO).as_posix() for p in (REPO / "tests").rglob("test_*.py")}
    assert files, "no test files found under tests/"
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    collected = {line.split("::", 1)[0] for line in r.stdout.splitlines() if "::" in line}
    missing = sorted(files - collected)
    assert not missing, f"test files pytest does not collect: {missing}"
