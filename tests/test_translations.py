"""The translations in locale/ (`make messages` writes them): every string of the code and the
templates is in its catalog, translated and not fuzzy, and each compiled .mo says what its .po
says now. The .mo files are committed, as Django commits its own (CI machines may have no
gettext); a file's time says nothing after a checkout, so a .mo is compared by what it holds."""

import ast
import gettext
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CATALOGS = sorted((ROOT / "locale").glob("*/LC_MESSAGES/*.po"))


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)  # plural form (0 if none) -> text
    fuzzy: bool = False

    @property
    def translated(self) -> bool:
        return bool(self.msgstr) and all(self.msgstr.values())


def po_entries(path: Path) -> list[Entry]:
    """The entries of a .po file as makemessages writes it: blank lines between entries, flags on
    `#,` lines, each keyword's quoted text continued on the lines after it. Obsolete entries (`#~`)
    and other comments are skipped; the header is the entry whose msgid is empty."""
    entries = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        entry, keyword = Entry(), ""
        texts: dict[str, str] = {}
        for line in block.strip().splitlines():
            if line.startswith("#,"):
                entry.fuzzy = entry.fuzzy or "fuzzy" in [
                    flag.strip() for flag in line[2:].split(",")
                ]
            elif line.startswith('"'):
                texts[keyword] += ast.literal_eval(line)
            elif not line.startswith("#"):
                keyword, quoted = line.split(" ", 1)
                texts[keyword] = ast.literal_eval(quoted)
        if "msgid" not in texts:
            continue
        entry.msgid = texts.pop("msgid")
        entry.msgid_plural = texts.pop("msgid_plural", None)
        entry.msgctxt = texts.pop("msgctxt", None)
        for keyword, text in texts.items():
            form = keyword.removeprefix("msgstr").strip("[]")
            entry.msgstr[int(form or 0)] = text
        entries.append(entry)
    return entries


def _messages(path: Path) -> list[Entry]:
    return [entry for entry in po_entries(path) if entry.msgid]


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("po", CATALOGS, ids=_name)
def test_every_string_is_translated_and_none_is_fuzzy(po: Path):
    entries = po_entries(po)
    (header,) = [entry for entry in entries if not entry.msgid]
    assert not header.fuzzy, "the header is fuzzy: fill it in and drop the flag"
    nplurals = int(header.msgstr[0].split("nplurals=")[1].split(";")[0])
    untranslated = [entry.msgid for entry in _messages(po) if not entry.translated]
    fuzzy = [entry.msgid for entry in _messages(po) if entry.fuzzy]
    plural_forms_missing = [
        entry.msgid
        for entry in _messages(po)
        if entry.msgid_plural is not None and sorted(entry.msgstr) != list(range(nplurals))
    ]
    assert (untranslated, fuzzy, plural_forms_missing) == ([], [], [])


@pytest.mark.parametrize("po", CATALOGS, ids=_name)
def test_each_mo_file_is_its_po_file_compiled_as_it_is_now(po: Path):
    """Read the way Django reads it (Python's gettext): every translation of the .po, each
    plural form and the header, comes out of the .mo as written."""
    with po.with_suffix(".mo").open("rb") as compiled:
        catalog = gettext.GNUTranslations(compiled)
    (header,) = [entry for entry in po_entries(po) if not entry.msgid]
    # msgfmt leaves out the date the strings were collected, and only that.
    expected_header = _header_fields(header.msgstr[0])
    expected_header.pop("pot-creation-date", None)
    assert catalog.info() == expected_header
    # One count for each plural form of this language.
    counts = {catalog.plural(n): n for n in reversed(range(200))}
    stale = []
    for entry in _messages(po):
        for form, expected in entry.msgstr.items():
            if entry.msgid_plural is None and entry.msgctxt is None:
                found = catalog.gettext(entry.msgid)
            elif entry.msgid_plural is None:
                found = catalog.pgettext(entry.msgctxt, entry.msgid)
            elif entry.msgctxt is None:
                found = catalog.ngettext(entry.msgid, entry.msgid_plural, counts[form])
            else:
                found = catalog.npgettext(
                    entry.msgctxt, entry.msgid, entry.msgid_plural, counts[form]
                )
            if found != expected:
                stale.append((entry.msgid, form, found))
    assert stale == [], "run `make messages` (compilemessages) and commit the .mo"


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="needs gettext's xgettext")
def test_the_catalogs_hold_every_string_of_the_code_and_templates(tmp_path: Path):
    """`make messages` on a copy of the sources changes no catalog's strings: none is missing
    (a new string never collected) and none is left over."""
    for name in ["chatbridge", "rooms", "users", "watson", "locale", "manage.py"]:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)
    environment = {**os.environ, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "chatbridge.settings"}
    for domain in ("django", "djangojs"):
        subprocess.run(
            [
                sys.executable,
                "manage.py",
                "makemessages",
                "-d",
                domain,
                "-l",
                "es",
                "--no-obsolete",
            ],
            cwd=tmp_path,
            env=environment,
            check=True,
            capture_output=True,
        )
    for po in CATALOGS:
        collected = tmp_path / po.relative_to(ROOT)
        assert _keys(collected) == _keys(po), f"run `make messages`: {_name(po)} is behind the code"


def _header_fields(header: str) -> dict[str, str]:
    fields = (line.split(":", 1) for line in header.splitlines() if ":" in line)
    return {name.strip().lower(): value.strip() for name, value in fields}


def _keys(path: Path) -> set[tuple[str | None, str, str | None]]:
    return {(entry.msgctxt, entry.msgid, entry.msgid_plural) for entry in _messages(path)}


def test_the_reader_sees_flags_plurals_continuations_and_skips_obsolete_entries(tmp_path: Path):
    po = tmp_path / "django.po"
    po.write_text(
        'msgid ""\nmsgstr ""\n"Plural-Forms: nplurals=2; plural=(n != 1);\\n"\n\n'
        '#, fuzzy, python-format\nmsgid ""\n"Hola %(name)s, "\n"\\"tú\\""\nmsgstr "x"\n\n'
        'msgid "one"\nmsgid_plural "many"\nmsgstr[0] "uno"\nmsgstr[1] ""\n\n'
        '#~ msgid "gone"\n#~ msgstr "ido"\n',
        encoding="utf-8",
    )
    header, fuzzy, plural = po_entries(po)
    assert header.msgstr == {0: "Plural-Forms: nplurals=2; plural=(n != 1);\n"}
    assert (fuzzy.msgid, fuzzy.fuzzy, fuzzy.translated) == ('Hola %(name)s, "tú"', True, True)
    assert (plural.msgid_plural, plural.msgstr, plural.translated) == (
        "many",
        {0: "uno", 1: ""},
        False,
    )
