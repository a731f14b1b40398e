"""The engine stays usable without Streamlit: only soartlab/ui/ (with app.py and pages/)
imports it."""

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "soartlab"


def _imports_streamlit(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and getattr(
            node.func, "id", getattr(node.func, "attr", "")
        ) in (
            "import_module",
            "__import__",
        ):
            names = [
                a.value
                for a in node.args
                if isinstance(a, ast.Constant) and isinstance(a.value, str)
            ]
        else:
            continue
        if any(name == "streamlit" or name.startswith("streamlit.") for name in names):
            return True
    return False


def test_engine_modules_do_not_import_streamlit():
    engine_files = [p for p in ENGINE.rglob("*.py") if "ui" not in p.relative_to(ENGINE).parts]
    assert engine_files, "no engine modules found"
    offenders = [str(p.relative_to(ENGINE.parent)) for p in engine_files if _imports_streamlit(p)]
    assert offenders == [], f"streamlit imported outside soartlab/ui/: {offenders}"


def test_ui_package_is_where_streamlit_lives():
    ui_files = list((ENGINE / "ui").glob("*.py"))
    assert any(_imports_streamlit(p) for p in ui_files)


def test_detector_sees_streamlit_imports(tmp_path):
    for source in (
        "import streamlit as st",
        "from streamlit import session_state",
        "import streamlit.components.v1",
    ):
        path = tmp_path / "m.py"
        path.write_text(source + "\n")
        assert _imports_streamlit(path), source
    path = tmp_path / "m.py"
    path.write_text("import numpy\n")
    assert not _imports_streamlit(path)
