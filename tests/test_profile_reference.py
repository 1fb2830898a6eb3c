import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_profile_reference_doc_is_generated_from_the_model() -> None:
    result = subprocess.run([sys.executable, "tools/profile_reference.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_profile_reference_documents_every_duration_in_its_written_form() -> None:
    text = (ROOT / "docs" / "profile-reference.md").read_text()
    assert "| `spec.router.candidateWindow` | `3s` |" in text
    assert "| `spec.executor.ledgerRetention` | `7d` |" in text
    assert "| `spec.health.strict` | `true` |" in text
