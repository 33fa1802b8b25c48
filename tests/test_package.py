"""The package as a user installs it: a wheel and an editable install in a fresh virtualenv, used
from another folder, with upstream's import lines and the `kronos` command.

The fresh venv borrows this project's installed dependencies through a `.pth` file (no network,
no second torch); the package itself is installed into it for real, by pip."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from kronos_integration.model import Kronos as UpstreamLayoutKronos
from kronos_integration.predictor import KronosPredictor
from tests.checkpoints import GOLDEN, make_tiny_pair

ROOT = Path(__file__).resolve().parents[1]
IMPORTS = (
    "from kronos_integration import Kronos, KronosTokenizer, KronosPredictor; "
    "from kronos_integration.model import Kronos as K2, KronosTokenizer, KronosPredictor as P2; "
    "import kronos_integration; assert Kronos is K2 and KronosPredictor is P2; "
    "print(kronos_integration.__file__)"
)


def fresh_venv(folder: Path) -> Path:
    """A new venv whose interpreter sees this project's dependencies, not the project."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "project-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def run(*command: str | Path, cwd: Path) -> str:
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("editable", [False, True], ids=["wheel", "editable"])
def test_installed_package_imports_and_predicts_from_anywhere(tmp_path: Path, editable: bool):
    python = fresh_venv(tmp_path / "venv")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    if editable:
        run(*pip, "-e", ROOT, cwd=elsewhere)
    else:
        run(python, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
            "-w", tmp_path / "dist", ROOT, cwd=elsewhere)  # fmt: skip
        (wheel,) = (tmp_path / "dist").glob("kronos_integration-*.whl")
        run(*pip, "--no-index", wheel, cwd=elsewhere)
    where = run(python, "-c", IMPORTS, cwd=elsewhere).strip()
    assert Path(where).is_relative_to(ROOT if editable else tmp_path / "venv")
    (elsewhere / "candles.csv").write_bytes((GOLDEN / "candles.csv").read_bytes())
    kronos = tmp_path / "venv" / "bin" / "kronos"
    command = ["predict", "candles.csv", "--horizon-days", "5", "--mode", "simulated"]
    table = run(kronos, *command, "--plot", "out.png", cwd=elsewhere)
    assert table.splitlines()[0].split()[:2] == ["date", "predicted_price"]
    assert len(table.strip().splitlines()) == 2 + 5
    assert (elsewhere / "out.png").read_bytes()[:4] == b"\x89PNG"


def test_verbose_shows_a_progress_bar_on_stderr(capfd: pytest.CaptureFixture[str]):
    model, tokenizer = make_tiny_pair()
    assert isinstance(model, UpstreamLayoutKronos)
    predictor = KronosPredictor(model, tokenizer, max_context=64)
    stamps = pd.date_range("2024-03-04", periods=50, freq="h")
    prices = 10.0 + stamps[:40].hour.to_numpy()
    candles = pd.DataFrame({c: prices for c in ("open", "high", "low", "close")})
    predictor.predict(candles, stamps[:40].to_series(), stamps[40:].to_series(), 10, verbose=True)
    quiet_out, bar = capfd.readouterr()
    assert "10/10" in bar and quiet_out == ""
    predictor.predict(candles, stamps[:40].to_series(), stamps[40:].to_series(), 10)
    assert capfd.readouterr().err == ""


def test_every_third_party_import_of_the_library_is_a_declared_dependency():
    """What `pip install .` installs must cover what the package imports (optional extras apart),
    or a fresh install breaks on first use."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = {_distribution_name(r) for r in declared["dependencies"]}
    optional = {
        _distribution_name(r) for extra in declared["optional-dependencies"].values() for r in extra
    }
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for path in (ROOT / "kronos_integration").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "kronos_integration":
                    continue
                owners = {_distribution_name(d) for d in distributions.get(top, [top])}
                if not owners & (required | optional):
                    missing[top] = str(path.relative_to(ROOT))
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def _distribution_name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
