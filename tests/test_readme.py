"""The README is the operator's manual: it must list every setting and both set-up commands."""

import re
from pathlib import Path

from service.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_documents_every_setting():
    documented = set(re.findall(r"`(HCT_[A-Z0-9_]+)`", README))
    expected = {f"HCT_{name.upper()}" for name in Settings.model_fields}
    assert expected <= documented, sorted(expected - documented)


def test_readme_has_exactly_two_setup_commands():
    setup = README.split("## Set up", 1)[1].split("##", 1)[0]
    block = setup.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make serve", "make test"]


def test_readme_says_the_model_is_synthetic_and_not_for_clinical_use():
    head = README[:1500].lower()
    assert "synthetic" in head and "not for clinical use" in head
