"""Write docs/RELIABILITY.md from a run of the fault suite (`make reliability`).

    python bench/reliability.py var/reliability.json var/reliability.xml > docs/RELIABILITY.md

The JSON holds what each passing fault or bad-input test recorded (tests/conftest.py,
`record_fault`); the JUnit XML says what ran, passed and failed.
"""

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(records_path: str, junit_path: str, audit_path: str = "") -> None:
    records = json.loads(Path(records_path).read_text())
    suite = ET.parse(junit_path).getroot()  # noqa: S314 - our own pytest's report
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    tests, failures = int(suite.get("tests", 0)), int(suite.get("failures", 0))
    errors, seconds = int(suite.get("errors", 0)), float(suite.get("time", 0))
    failed = [
        f"{case.get('classname')}::{case.get('name')}"
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    out = [
        "# Reliability report",
        "",
        "Produced by `make reliability` (the fault, bad-input, load and soak tests in their long",
        "form, then `bench/reliability.py`); rerun it to reproduce. Every fault is made for real:",
        "private `redis-server`s the tests stop, kill or freeze (SIGSTOP), a TCP relay cut in",
        "front of PostgreSQL, SIGKILLed Daphne and worker processes, fake Watson and WhatsApp",
        "servers scripted to fail or stall. CI (`make test`) runs every one of them in a",
        "shorter form.",
        "",
        f"Run: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, commit `{commit}`, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{_cpus()} CPUs. {tests} tests, {tests - failures - errors} passed, "
        f"{failures + errors} failed, {seconds:.0f} s. Load average when written (1, 5, 15 min): "
        f"{' / '.join(f'{load:.1f}' for load in os.getloadavg())}"
        + (
            " (above the CPU count: other work shared the machine, so figures are slower than "
            "on an idle one)."
            if os.getloadavg()[1] > _cpus()
            else "."
        ),
        "",
        "| fault or input | what was done | times | what held | figures |",
        "|---|---|---|---|---|",
    ]
    for record in records:
        cells = [
            record["fault"],
            record["done"],
            str(record["times"]),
            record["held"],
            record.get("figures") or "—",
        ]
        out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    for name in failed:
        out.append(f"| **FAILED** `{name}` | | | see the test output | |")
    out += [
        "",
        "Lost messages: 0 in every row above (each test counts stored rows and replies against",
        "what it sent). The test behind each row:",
        "",
        *[f"- {record['fault']}: `{record['test']}`" for record in records],
        "",
        *_audit(audit_path),
    ]
    sys.stdout.write("\n".join(out))


def _audit(path: str) -> list[str]:
    """The dependency audit (`make audit`: pip-audit --strict over both requirements files)."""
    if not path or not Path(path).exists():
        return []
    text = Path(path).read_text()
    skipped = [line.split()[0] for line in text.splitlines() if "could not be audited" in line]
    found = [line for line in text.splitlines() if "known vulnerabilit" in line.lower()]
    lines = ["## Dependencies", ""]
    if skipped:
        lines += [
            f"`pip-audit --strict` could not audit {len(skipped)} of the pinned packages: the",
            "vulnerability data is not reachable from this machine (the PyPI JSON API answers",
            "404 for every package version, and api.osv.dev does not answer at all), so pip-audit",
            "skips them and --strict fails. No audit result can be claimed here; run `make audit`",
            "where PyPI's API is reachable. Skipped: " + ", ".join(skipped) + ".",
        ]
    else:
        lines += [f"`pip-audit --strict`: {found[0] if found else 'see var/audit.txt'}"]
    return [*lines, ""]


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main(*sys.argv[1:4])
