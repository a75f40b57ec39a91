"""The Python API (issue 20, point 5): docs/api.md's example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import factorize
from factorize.errors import ConfigError

DOC = Path(__file__).parent.parent / "docs" / "api.md"


def test_the_documented_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], str(DOC), "exec"), {})
    assert (tmp_path / "runs" / "qmix" / "summary.json").is_file()
    assert sorted(p.name for p in (tmp_path / "runs" / "vdn").iterdir()) == ["s0", "s1", "s2"]
    assert (tmp_path / "report" / "tiny" / "report.md").is_file()


def test_the_api_raises_the_clis_errors() -> None:
    with pytest.raises(ConfigError, match="mixer vdn has no option 'embed_dim'"):
        factorize.train("vdn", "two_step", steps=10, overrides={"mixer.embed_dim": 8})
    with pytest.raises(ConfigError, match="algo: unknown method 'qmixx'"):
        factorize.train("qmixx", "two_step")
