"""Every `factorize` command the README and docs/ show runs, so a documented command that breaks
fails the suite.

Commands come from fenced shell blocks and from inline code spans that start with `factorize `.
Each document's commands run in order in one scratch directory (later ones read what earlier
ones wrote, as a reader's would; a YAML spec the document shows is saved as `<name>.yaml`). To
stay cheap they are changed in three documented ways only:
`train` runs `--steps 64` with one env and one test episode, `sweep` runs `--dry-run` (every
run's config is still built and checked), and a `report` of `results/<name>` that no earlier
command produced reads the committed `docs/results/<name>/results.csv` instead. A command for an
env family whose extra is missing, or one that exits 2 naming a missing extra (a sweep over such
envs, the Ray executor), is skipped, as are the set-up commands (`make`, `pip`), which
CI proves on fresh venvs (`.ci/fresh_paths.sh`).
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "docs" / "results" / "README.md"]
FENCE = re.compile(r"^```(?:bash|sh|shell)\n(.*?)^```", re.M | re.S)
YAML = re.compile(r"^```yaml\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`(factorize [^`]+)`")
SETUP = ("make", "pip")
REGENERATE = "python docs/results/"
"""The scripts that rebuild committed side tables from a full sweep's raw runs (hours of compute)."""
EXTRAS = {"mpe": "mpe2", "pettingzoo": "pettingzoo", "lbf": "lbforaging", "rware": "rware", "smax": "jaxmarl"}
EXTRA_MODULES = {"pettingzoo": "mpe2", "lbf": "lbforaging", "rware": "rware", "smax": "jaxmarl", "ray": "ray"}
"""A package each extra installs: a command that exits 2 naming a missing extra is skipped."""
NAMES_EXTRA = re.compile(r"pip install 'factorize\[(\w+)\]'")


def missing_extra(stderr: str) -> str | None:
    """The extra a one-line error asks for, if that extra really is not installed here."""
    found = NAMES_EXTRA.search(stderr)
    if found is None or found.group(1) not in EXTRA_MODULES:
        return None
    return found.group(1) if importlib.util.find_spec(EXTRA_MODULES[found.group(1)]) is None else None


def _block_commands(block: str) -> list[str]:
    """The commands of a fenced block: continuation lines joined, comments dropped."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(shlex.join(words))
    return out


def _complete(span: str) -> bool:
    """An inline span is a command, not a fragment: no `...`, no <placeholder>, a subcommand with arguments."""
    return "..." not in span and "<" not in span and len(span.split()) >= 3


def commands(doc: Path) -> list[str]:
    """A document's commands in reading order (inline spans kept verbatim: a reader pastes them)."""
    text = doc.read_text()
    found = [(m.start(), i, c) for m in FENCE.finditer(text) for i, c in enumerate(_block_commands(m.group(1)))]
    found += [(m.start(), 0, m.group(1)) for m in INLINE.finditer(text) if _complete(m.group(1))]
    return [c for _, _, c in sorted(found)]


def write_example_specs(doc: Path, cwd: Path) -> None:
    """The YAML specs a document shows (`name: x`) as `x.yaml`, as a reader would save them."""
    for block in YAML.findall(doc.read_text()):
        name = re.search(r"^name: *(\S+)", block, re.M)
        if name:
            (cwd / f"{name.group(1)}.yaml").write_text(block)


def _option(words: list[str], flag: str) -> str | None:
    return words[words.index(flag) + 1] if flag in words else None


def _set_option(words: list[str], flag: str, value: str) -> list[str]:
    if flag in words:
        i = words.index(flag)
        return [*words[: i + 1], value, *words[i + 2:]]
    return [*words, flag, value]


def cheap(words: list[str], cwd: Path, unmade: set[str] | None = None) -> list[str] | str:
    """The command as the test runs it, or why it is skipped. `unmade` collects the run
    directories of skipped commands: a later command that reads one is skipped too."""
    unmade = set() if unmade is None else unmade
    command = words[1] if len(words) > 1 else ""
    env = _option(words, "--env")
    if env is not None:
        module = EXTRAS.get(env.partition(":")[0])
        if module is not None and importlib.util.find_spec(module) is None:
            out = _option(words, "--out")
            if out is not None:
                unmade.add(out)
            return f"{env}: extra not installed"
    if command in ("render", "eval", "qtable") and len(words) > 2 and words[2] in unmade:
        return f"{words[2]}: its training was skipped"
    if command == "train" and "--resume" not in words:
        words = _set_option(words, "--steps", "64")
        keys = {w.split("=", 1)[0] for w in words if "=" in w}
        words += [f"{k}=1" for k in ("runner.n_envs", "runner.test_episodes") if k not in keys]
    elif command == "sweep":
        words = [*words, "--dry-run"]
    elif command == "report":
        src = Path(words[2])
        committed = ROOT / "docs" / "results" / src.name / "results.csv"
        if not (cwd / src).exists() and src.parts[:1] == ("results",) and committed.is_file():
            words = [*words[:2], str(committed), *words[3:]]
    return words


def _cases() -> list[tuple[str, list[str]]]:
    return [(str(doc.relative_to(ROOT)), commands(doc)) for doc in DOCS]


def test_the_docs_show_commands() -> None:
    found = dict(_cases())
    assert len(found["README.md"]) >= 15, found["README.md"]
    assert any("env.kwargs=" in c for c in found["README.md"])


@pytest.mark.parametrize("doc, cmds", _cases(), ids=[d for d, _ in _cases()])
def test_documented_commands_run(doc: str, cmds: list[str], tmp_path: Path) -> None:
    write_example_specs(ROOT / doc, tmp_path)
    ran = skipped = 0
    unmade: set[str] = set()
    for cmd in cmds:
        words = shlex.split(cmd)
        if words[0] in SETUP or cmd.startswith(REGENERATE):
            continue
        assert Path(words[0]).name == "factorize", f"{doc}: unclassified command {cmd!r}"
        argv = cheap(words, tmp_path, unmade)
        if isinstance(argv, str):
            skipped += 1
            continue
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "factorize.cli", *argv[1:]], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)
        if proc.returncode == 2 and missing_extra(proc.stderr):
            skipped += 1
            continue
        shown = f"{doc}: {cmd!r} (run as {shlex.join(argv)}) exited {proc.returncode}"
        assert proc.returncode == 0, f"{shown}:\n{proc.stderr[-2000:]}"
        print(f"{time.perf_counter() - t0:6.1f}s  {shlex.join(argv)}")
        ran += 1
    if ran == 0 and skipped:
        pytest.skip(f"{doc}: every command needs an extra that is not installed")
    assert ran > 0 or not cmds
