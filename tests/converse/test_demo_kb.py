"""The demo brand's knowledge base and its eval data are consistent. (The demo build itself — the knowledge
base, teams, people and past conversations — is checked in tests/web/test_demo_shop_browser.py, which
builds it once and then walks the shop as a newcomer.)"""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_kb_data_checker_finds_no_problem(capsys):
    spec = importlib.util.spec_from_file_location("check_kb_data", ROOT / "evals/check_kb_data.py")
    checker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checker)
    assert checker.main() == 0, capsys.readouterr().out
    assert "PROBLEM" not in capsys.readouterr().out


def test_the_knowledge_eval_names_a_missing_file_and_runs_nothing(tmp_path):
    import subprocess
    import sys

    missing = tmp_path / "questions.jsonl"
    run = subprocess.run([sys.executable, str(ROOT / "evals/knowledge.py"), "--test", str(missing)],
                         check=False, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and f"no such file: {missing}" in run.stderr and not run.stdout
