"""The task-level check: Tesseract's character error rate on sharp, blurred and deblurred text."""

from __future__ import annotations

import json
import shutil

import pytest

from deblurgan_hf.ocr import DEFAULT_LINES, cer, levenshtein, main, ocr_check, render_text

pytestmark = pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs Debian's tesseract-ocr (make test installs it)")


def test_levenshtein_and_cer():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == levenshtein("abc", "") == 3
    assert levenshtein("flaw", "lawn") == 2
    assert cer("the cat", "the  cat\n") == 0.0  # layout whitespace is not a reading error
    assert cer("abcd", "abxd") == 0.25
    with pytest.raises(ValueError, match="non-empty reference"):
        cer(" ", "x")


def test_ocr_check_reports_three_error_rates(small_model, tmp_path):
    result = ocr_check(small_model, lines=DEFAULT_LINES[:4], pages=2, out_dir=tmp_path)
    rates = result["cer"]
    assert set(rates) == {"sharp", "blurred", "deblurred"}
    assert rates["sharp"] < 0.03  # Tesseract reads the clean rendering almost perfectly
    assert rates["blurred"] > rates["sharp"] + 0.05  # and the project's blur hurts it
    assert rates["deblurred"] >= 0.0
    assert len(result["per_page"]) == 2 and len(result["texts"]["blurred"]) == 2
    saved = json.loads((tmp_path / "ocr.json").read_text())
    assert saved["cer"] == pytest.approx(rates)
    assert (tmp_path / "page1_deblurred.png").is_file()


def test_ocr_cli_without_model(capsys):
    assert main(["--pages", "1", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "| sharp |" in out and "| blurred |" in out and "deblurred" not in out


def test_bad_font_and_text():
    with pytest.raises(FileNotFoundError, match="font file"):
        render_text(["x"], font="/nonexistent/font.ttf")
    with pytest.raises(ValueError, match="non-empty line"):
        render_text(["", " "])
