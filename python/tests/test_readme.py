"""The README's "Python in eight lines" example runs exactly as printed."""
import re
import subprocess
import sys

from conftest import ROOT, env_for_child


def readme_example():
    text = open(ROOT + "/README.md", encoding="utf-8").read()
    section = text.split("## Python in eight lines", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the section holds one python block"
    return blocks[0]


def test_readme_example_runs_as_printed(tmp_path):
    code = readme_example()
    assert len([l for l in code.splitlines() if l.strip()]) == 8
    script = tmp_path / "readme_example.py"
    script.write_text(code)
    r = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env=env_for_child(OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    last = r.stdout.rstrip("\n").splitlines()[-1]
    m = re.fullmatch(r"64 tokens; state (\d+) bytes after (\d+) tokens", last)
    assert m, r.stdout
    assert int(m.group(2)) == 50_000 + len("\nROMEO:") + 64
