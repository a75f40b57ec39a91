"""Bad env names and missing optional packages exit 2 with one line naming the problem."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from factorize.cli import main
from factorize.envs import smax as smax_adapter
from factorize.errors import ConfigError
from factorize.resolve import build_config


@pytest.mark.parametrize(
    ("name", "package", "words"),
    [
        ("mpe:nope", "mpe2", "unknown MPE scenario 'nope'"),
        ("pettingzoo:not.a.module", "pettingzoo", "no module 'not.a.module'"),
        ("pettingzoo:json", "pettingzoo", "has no parallel_env"),
        ("lbf:Nope-v0", "lbforaging", "lbf:Nope-v0 is not a registered lbforaging env"),
        ("rware:nope-v2", "rware", "rware:nope-v2 is not a registered rware env"),
        ("smax:nope", "jaxmarl", "unknown SMAX map 'nope'"),
        ("mpe", None, "mpe needs an argument"),
    ],
)
def test_bad_env_name_exits_2_with_one_line(tmp_path, capsys, name, package, words):
    # find_spec, not importorskip: importing jaxmarl directly rebinds sys.stderr (the adapter guards it)
    if package is not None and importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")
    code = main(["train", "--algo", "qmix", "--env", name, "--steps", "10", "--out", str(tmp_path / "r")])
    out, err = (s.strip() for s in capsys.readouterr())
    assert code == 2 and out == "", "stdout stays clean (it carries JSON); importing jaxmarl prints"
    assert len(err.splitlines()) == 1 and words in err
    assert not (tmp_path / "r").exists(), "nothing is written for a bad name"


@pytest.mark.parametrize(
    ("name", "module", "extra"),
    [("smax:3m", "jaxmarl", "smax"), ("mpe:simple_spread_v3", "mpe2", "pettingzoo"),
     ("lbf:Foraging-8x8-2p-2f-coop-v3", "lbforaging", "lbf"), ("rware:rware-tiny-2ag-v2", "rware", "rware"),
     ("pettingzoo:pettingzoo.sisl.pursuit_v5", "pettingzoo", "pettingzoo")],
)
def test_missing_package_names_the_extra(monkeypatch, name, module, extra):
    # a None entry in sys.modules makes `import module` raise ImportError, as if not installed
    for loaded in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, loaded)
    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setattr(smax_adapter, "_SMAX_MODULE", [])  # SMAX's modules, once imported, are kept
    with pytest.raises(ConfigError, match=rf"pip install 'factorize\[{extra}\]'") as err:
        build_config("qmix", name)
    assert "\n" not in str(err.value)


def test_list_envs_shows_families_and_extras(capsys):
    assert main(["list", "envs"]) == 0
    out = capsys.readouterr().out
    for family in ("pettingzoo", "mpe", "lbf", "rware", "smax"):
        assert any(line.startswith(family + " ") for line in out.splitlines())
    assert "installed" in out
