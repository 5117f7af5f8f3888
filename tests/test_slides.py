"""The talk's slides (README, "Slides"): slides/talk.md is the one source of talk.html and talk.pdf.

Always, with no tools beyond Python: every picture the slides show is a PNG in slides/figures/, which the
notebooks export (nothing drawn by hand or fetched from elsewhere; beamer cannot include GIFs), and every
slide has speaker notes. With pandoc and LaTeX installed: `make slides` builds both outputs, the PDF has at
least 25 pages and every figure in it, and the HTML loads reveal.js from a local copy, not from a CDN.
"""

import pathlib
import re
import shutil
import subprocess
import zlib

import pytest

ROOT = pathlib.Path(__file__).parents[1]
SLIDES = ROOT / "slides"
TALK = SLIDES / "talk.md"
FIGURES = SLIDES / "figures"
MIN_PAGES = 25
APT_PACKAGES = "pandoc texlive-latex-recommended texlive-fonts-recommended lmodern texlive-pictures"

IMAGE = re.compile(r"!\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~)")
NOTES_OPEN = re.compile(r"^:{3,}\s*(?:notes|\{\s*\.notes\s*\})\s*$")
DIV_LINE = re.compile(r"^:{3,}")


def body_lines(text):
    """talk.md without its YAML title block and without fenced code (where '#' starts a comment)."""
    lines = text.splitlines()
    if lines and lines[0].strip() == "---":
        end = next(i for i in range(1, len(lines)) if lines[i].strip() in ("---", "..."))
        lines = lines[end + 1:]
    kept, fence = [], None
    for line in lines:
        marker = FENCE.match(line.strip())
        if fence is None and marker:
            fence = marker.group(1)
        elif fence is not None and line.strip().startswith(fence):
            fence = None
        elif fence is None:
            kept.append(line)
    return kept


def slides(text):
    """[(level, title, lines)]: level 1 is a section heading, level 2 a slide (pandoc's --slide-level 2)."""
    found = []
    for line in body_lines(text):
        heading = re.match(r"^(#{1,2})\s+(.*?)\s*(\{.*\})?\s*$", line)
        if heading:
            found.append((len(heading.group(1)), heading.group(2), []))
        elif found:
            found[-1][2].append(line)
        elif line.strip():
            raise AssertionError(f"text before the first heading would make an untitled slide: {line!r}")
    return found


def notes_of(lines):
    """The text inside the slide's `::: notes` block, or None when it has none."""
    for start, line in enumerate(lines):
        if NOTES_OPEN.match(line.strip()):
            depth, inside = 1, []
            for other in lines[start + 1:]:
                stripped = other.strip()
                if DIV_LINE.match(stripped):
                    depth += 1 if stripped.strip(":").strip() else -1
                    if depth == 0:
                        return "\n".join(inside).strip()
                inside.append(other)
            raise AssertionError("a notes block is not closed with ':::'")
    return None


def figure_references(text):
    return IMAGE.findall("\n".join(body_lines(text)))


def test_every_figure_is_a_png_the_notebooks_exported():
    text = TALK.read_text()
    references = figure_references(text)
    assert len(references) >= 15, f"found only {len(references)} figures in {TALK}; is the image syntax unusual?"
    for reference in references:
        assert reference.startswith("figures/"), f"{reference}: slides show only figures from slides/figures/"
        assert reference.endswith(".png"), f"{reference}: beamer cannot include it; export a PNG from the notebook"
        assert (SLIDES / reference).is_file(), (
            f"{reference} does not exist: run the notebook that exports it (make course), or drop the slide's figure")
    for line in body_lines(text):
        assert "<img" not in line and "\\includegraphics" not in line, (
            f"pictures go in as ![caption](figures/name.png), so that both outputs get them: {line!r}")


def test_every_slide_has_speaker_notes():
    found = slides(TALK.read_text())
    sections = [title for level, title, _ in found if level == 1]
    content = [(title, lines) for level, title, lines in found if level == 2]
    assert len(sections) >= 8, f"the talk's arc has ten sections; found {sections}"
    assert len(content) >= MIN_PAGES, f"only {len(content)} slides"
    for level, title, lines in found:
        if level == 1:
            assert not "".join(lines).strip(), f"section {title!r}: put its text on a '## slide' below it"
    missing = [title for title, lines in content if not notes_of(lines)]
    assert not missing, f"slides without a '::: notes' block (or with an empty one): {missing}"


def test_the_notes_parser_sees_nested_divs():
    lines = ["text", ":::: columns", "::: column", "a", ":::", "::::", "", "::: notes", "say this", ":::"]
    assert notes_of(lines) == "say this"
    assert notes_of(lines[:6]) is None


def pdf_page_count(path):
    """Pages of a PDF: pdfinfo (poppler-utils) when installed, else count the page objects, also in object streams."""
    if shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
        return int(re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE).group(1))
    data = path.read_bytes()
    texts = [data]
    for match in re.finditer(rb"/Type\s*/ObjStm\b.*?stream\r?\n", data, re.DOTALL):
        texts.append(zlib.decompressobj().decompress(data[match.end():]))
    return sum(len(re.findall(rb"/Type\s*/Page(?![A-Za-z])", text)) for text in texts)


@pytest.mark.slow
def test_make_slides_builds_the_html_and_the_pdf(tmp_path):
    for tool in ("pandoc", "pdflatex", "make"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed; to build the slides: "
                        f"sudo apt-get install --no-install-recommends {APT_PACKAGES}")
    out = tmp_path / "build"
    reveal = out / "node_modules/reveal.js/dist/reveal.js"
    # -o: never fetch reveal.js from npm here; the test stays offline. `make slides` itself installs it once.
    result = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "slides", f"SLIDES_BUILD={out}", "-o", str(reveal)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"make slides failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"

    pdf = out / "talk.pdf"
    pages = pdf_page_count(pdf)
    assert pages >= MIN_PAGES, f"{pdf} has {pages} pages, fewer than {MIN_PAGES}"
    figures = set(figure_references(TALK.read_text()))
    images = len(re.findall(rb"/Subtype\s*/Image", pdf.read_bytes()))
    assert images >= len(figures), f"the PDF holds {images} images for {len(figures)} figures"

    html = (out / "talk.html").read_text()
    content_slides = [lines for level, _, lines in slides(TALK.read_text()) if level == 2]
    assert html.count('<aside class="notes">') == len(content_slides), "each slide's notes go to the speaker view"
    assets = re.findall(r'<(?:script|link)\b[^>]*?(?:src|href)="([^"]+)"', html)
    assert any(asset.endswith("dist/reveal.js") for asset in assets), assets
    for asset in assets:
        assert "://" not in asset and not asset.startswith("//"), f"{asset}: reveal.js must load offline, from a local copy"
        assert asset.startswith("node_modules/reveal.js/"), asset
    for source in re.findall(r'<img\b[^>]*?src="([^"]+)"', html):
        assert (out / source).is_file(), f"{source} is missing next to talk.html"
