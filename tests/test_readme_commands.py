"""Getting started as the README says, and hints that work as printed.

Every command in the README's fenced shell blocks runs in a working copy made like a fresh clone after
`make install` (a `.venv` of its own: here a link to this checkout's), in a shell that did what the README says
(`. .venv/bin/activate`), against the bundled news site instead of the internet; the few that cannot run here
are named in SKIPPED with the reason. The hints newsmon prints (the demo's closing query, `init`'s next step,
"no warehouse yet", ...) are run exactly as printed in a fresh shell where `newsmon` is not on PATH. `init`'s
User-Agent contact (given, asked on a terminal, taken from git, or a placeholder that every run warns about),
and the systemd unit for `serve` in docs/ (verified, and its ExecStart started and stopped as systemd would).
"""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import shutil
import signal
import subprocess
import textwrap
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsmon.config import PLACEHOLDER_CONTACT, load_settings, parse_settings, placeholder_contact
from newsmon.demo.run import FEEDS as DEMO_FEEDS
from newsmon.demo.server import SiteServer, demo_site_root

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
README = ROOT / "README.md"
UNIT = ROOT / "docs" / "newsmon.service"

# README commands not run here, by the start of their text, and why. Each must still match a README command.
SKIPPED: dict[str, str] = {
    "make demo": "installs into .venv first; the demo itself runs in test_the_hints_run_as_printed_in_a_fresh_shell",
    "make test": "installs, then runs the whole test suite this test is part of",
    "make lint": "installs, then lints the checkout: CI's own step, minutes long",
    "newsmon serve": "serves until stopped; test_the_systemd_unit_starts_serve_and_stops_it_cleanly runs it",
    "newsmon feeds add https://": "finds a feed on a site on the internet (tests stay on 127.0.0.1)",
    "newsmon report --since 36h --out /srv/": "writes into a web server's folder outside the working copy",
    "prefect ": "needs a Prefect server of your own (`prefect server start` runs until stopped); "
                "tests/test_deploy.py deploys prefect.yaml on one",
    "NEWSMON_CONFIG=$PWD/newsmon.toml prefect worker": "a worker runs until stopped (tests/test_deploy.py)",
}
# Files the README's commands assume the reader has.
READER_OPML = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0"><body><outline type="rss" text="Reader's feed" xmlUrl="{url}"/></body></opml>
"""
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[ \t]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)


def fenced_blocks(lang: str) -> list[str]:
    return [textwrap.dedent(m["body"]) for m in FENCE.finditer(README.read_text(encoding="utf-8"))
            if m["lang"] == lang]


def shell_commands() -> list[str]:
    """Each command of the README's ```sh blocks, in order (comment lines and blank lines left out)."""
    out: list[str] = []
    for block in fenced_blocks("sh"):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                out.append(line.strip())
    return out


def skip_reason(command: str) -> str | None:
    return next((why for start, why in SKIPPED.items() if command.startswith(start)), None)


def working_copy(tmp_path: Path) -> Path:
    """A folder like a fresh clone after `make install`: its own `.venv` (this checkout's, linked)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(VENV, target_is_directory=True)
    return work


def fresh_shell_env(tmp_path: Path, *, activated: bool = False) -> dict[str, str]:
    """A new shell's environment: no virtualenv on PATH (unless `activated`), its own Prefect home and git
    config, no Prefect server of the test session's."""
    venv_bin = str(VENV / "bin")
    path = [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
            if p and not os.path.realpath(p).startswith(os.path.realpath(VENV))]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "NEWSMON_", "VIRTUAL_ENV", "PYTHON", "GIT_"))}
    gitconfig = tmp_path / "gitconfig"
    gitconfig.touch()
    env |= {"PATH": os.pathsep.join(([venv_bin] if activated else []) + path), "PREFECT_HOME": str(tmp_path / "ph"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GIT_CONFIG_GLOBAL": str(gitconfig),
            "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path)}
    return env


def sh(command: str, cwd: Path, env: dict[str, str], *, activate: bool = False,
       timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`command` in bash, as typed (after `. .venv/bin/activate` when `activate`)."""
    script = f". .venv/bin/activate && {command}" if activate else command
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def ok(res: subprocess.CompletedProcess[str], command: str) -> str:
    assert res.returncode == 0 and "Traceback" not in res.stderr, (
        f"`{command}` exited {res.returncode}\nstdout: {res.stdout[-2000:]}\nstderr: {res.stderr[-3000:]}")
    return res.stdout


def point_at(config: Path, site: SiteServer) -> None:
    """The config `newsmon init` wrote, with the bundled site's feeds in place of the real ones (offline)."""
    text = config.read_text(encoding="utf-8")
    head = text.split("\n[[feeds]]", 1)[0]
    assert "allow_private_networks = false" in head
    head = head.replace("allow_private_networks = false", "allow_private_networks = true")
    feeds = "".join(f'\n[[feeds]]\nname = "{name}"\nurl = "{site.url(path)}"\n' for name, path in DEMO_FEEDS)
    config.write_text(head + feeds, encoding="utf-8")


@pytest.fixture
def site() -> Iterator[SiteServer]:
    with SiteServer(demo_site_root()) as server:
        yield server


# --- the README ------------------------------------------------------------------------------------------------

@pytest.mark.slow  # many newsmon processes, Prefect runs among them
def test_the_readmes_shell_commands_run_as_printed(tmp_path: Path, site: SiteServer) -> None:
    commands = shell_commands()
    assert {c for c in commands if skip_reason(c)} and all(
        any(c.startswith(start) for c in commands) for start in SKIPPED), "a SKIPPED entry matches no README command"
    work = working_copy(tmp_path)
    env = fresh_shell_env(tmp_path)
    (work / "reader.opml").write_text(READER_OPML.format(url=site.url("/feeds/ru.xml")), encoding="utf-8")
    ran: list[str] = []
    for command in commands:
        if skip_reason(command):
            continue
        res = sh(command, work, env, activate=True)
        out = ok(res, command)
        ran.append(command)
        if command.startswith("newsmon init"):
            settings = load_settings(work / "newsmon.toml")
            assert len(settings.feeds) >= 10 and not placeholder_contact(settings.http.contact_url)
            point_at(work / "newsmon.toml", site)  # offline from here on
        if command == "newsmon run":
            assert "contact_url" not in res.stderr  # the contact given to init: no warning
        if command.startswith("newsmon sql \"SELECT published_at"):
            assert "Azerbaijan" in out  # the bundled site's matching story
    assert any(c.startswith("newsmon run") for c in ran) and len(ran) >= 12, ran
    assert (work / "attach.sql").read_text().count("ATTACH") == 1 and (work / "report.html").exists()
    assert (work / "newsmon.opml").exists() and any((work / "exports").iterdir())

    # the Python session the README shows, in newsmon's own environment
    (snippet,) = fenced_blocks("python")
    (work / "session.py").write_text(snippet, encoding="utf-8")
    shown = ok(sh(".venv/bin/python session.py", work, env), "the README's Python session")
    assert "title" in shown and "score" in shown


def test_the_readmes_configuration_blocks_are_valid_configurations(tmp_path: Path) -> None:
    blocks = fenced_blocks("toml")
    assert blocks
    env = {"SMTP_PASSWORD": "pw", "SLACK_TOKEN": "tok"}
    for block in blocks:
        settings = parse_settings(tomllib.loads(block), tmp_path / "newsmon.toml", env)
        assert settings.http.robots is True
    http = parse_settings(tomllib.loads(blocks[0]), tmp_path / "newsmon.toml", env).http
    assert not placeholder_contact(http.contact_url)  # the README shows a contact, not a placeholder


# --- hints, as printed -----------------------------------------------------------------------------------------

@pytest.mark.slow  # many newsmon processes, Prefect runs among them
def test_the_hints_run_as_printed_in_a_fresh_shell(tmp_path: Path, site: SiteServer) -> None:
    """`make demo` leaves .venv unactivated: every hint must name newsmon so that this shell can run it."""
    work = working_copy(tmp_path)
    env = fresh_shell_env(tmp_path)
    assert sh("newsmon --version", work, env).returncode == 127  # not on PATH here

    demo = ok(sh(".venv/bin/newsmon demo", work, env), "newsmon demo")
    (query,) = re.findall(r"^Query the demo warehouse: (.+)$", demo, re.M)
    assert query.startswith(".venv/bin/newsmon sql --config newsmon-demo/newsmon.toml "), query
    assert "Azerbaijan" in ok(sh(query, work, env), query)

    init = ok(sh(".venv/bin/newsmon init --contact desk@newsroom.az", work, env), "newsmon init")
    (next_step,) = re.findall(r"then run `([^`]+)`", init)
    assert next_step == ".venv/bin/newsmon run --config newsmon.toml"
    point_at(work / "newsmon.toml", site)

    early = sh(".venv/bin/newsmon retag", work, env)
    assert early.returncode == 3
    (first,) = re.findall(r"no warehouse here yet; run `([^`]+)` first", early.stderr)
    assert first == ".venv/bin/newsmon run"
    for hint in (next_step, first):
        assert "new" in ok(sh(hint, work, env), hint)
    ok(sh(".venv/bin/newsmon retag", work, env), "newsmon retag")

    no_query = sh(".venv/bin/newsmon sql", work, env)
    (example,) = re.findall(r"e\.g\. (.+), or --attach", no_query.stderr)
    assert example.startswith(".venv/bin/newsmon sql ")
    assert re.search(r"\b\d+\b", ok(sh(example, work, env), example))

    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    missing = sh("../.venv/bin/newsmon sql 'SELECT 1' --config other.toml", elsewhere, env)
    (write_one,) = re.findall(r"run `([^`]+)` to write one", missing.stderr)
    assert write_one == f"{work}/.venv/bin/newsmon init other.toml"  # outside the copy: the full path
    ok(sh(write_one, elsewhere, env), write_one)
    assert (elsewhere / "other.toml").exists()


def test_hints_say_plain_newsmon_in_an_activated_shell(tmp_path: Path) -> None:
    work = working_copy(tmp_path)
    env = fresh_shell_env(tmp_path, activated=True)
    init = ok(sh("newsmon init --contact https://newsroom.az/desk", work, env), "newsmon init")
    assert "then run `newsmon run --config newsmon.toml`" in init
    missing = sh("newsmon sql 'SELECT 1' --config 'my config.toml'", work, env)
    (write_one,) = re.findall(r"run `([^`]+)` to write one", missing.stderr)
    assert write_one == "newsmon init 'my config.toml'"
    ok(sh(write_one, work, env), write_one)
    assert (work / "my config.toml").exists()


# --- the User-Agent contact --------------------------------------------------------------------------------------

def newsmon(args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return sh(f".venv/bin/newsmon {args}", cwd, env)


def written_contact(config: Path) -> str:
    return load_settings(config).http.contact_url


def test_init_writes_the_contact_it_is_given_and_refuses_one_that_is_not(tmp_path: Path) -> None:
    work = working_copy(tmp_path)
    env = fresh_shell_env(tmp_path)
    for given, written in (("ops@newsroom.az", "mailto:ops@newsroom.az"), ("mailto:ops@newsroom.az", None),
                           ("https://newsroom.az/about-our-monitoring", None)):
        res = newsmon(f"init --force --contact {shlex.quote(given)}", work, env)
        assert res.returncode == 0 and res.stderr == ""
        assert written_contact(work / "newsmon.toml") == (written or given)
        assert f"User-Agent contact: {written or given} (--contact)" in res.stdout
    for bad in ("ftp://newsroom.az", "someone", "https://", "ops@newsroom.az\tx"):
        res = newsmon(f"init other.toml --contact {shlex.quote(bad)}", work, env)
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and "--contact" in res.stderr, res.stderr
        assert "web page (https://...) or an email address" in res.stderr and "Traceback" not in res.stderr
    assert not (work / "other.toml").exists()


def test_init_without_a_terminal_takes_gits_email_else_writes_the_placeholder_and_warns(tmp_path: Path) -> None:
    work = working_copy(tmp_path)
    env = fresh_shell_env(tmp_path)
    gitconfig = Path(env["GIT_CONFIG_GLOBAL"])
    gitconfig.write_text("[user]\n\temail = desk@newsroom.az\n")
    res = newsmon("init", work, env)
    assert res.returncode == 0 and res.stderr == ""
    assert written_contact(work / "newsmon.toml") == "mailto:desk@newsroom.az"
    assert "User-Agent contact: mailto:desk@newsroom.az (git config user.email)" in res.stdout

    for email in ("12345+someone@users.noreply.github.com", "me@example.com", None):  # none of them reach anyone
        gitconfig.write_text(f"[user]\n\temail = {email}\n" if email else "")
        res = newsmon("init --force", work, env)
        assert res.returncode == 0 and written_contact(work / "newsmon.toml") == PLACEHOLDER_CONTACT
        assert res.stderr.count("\n") == 1 and "contact_url is a placeholder" in res.stderr, res.stderr


@pytest.mark.slow  # many newsmon processes, Prefect runs among them
def test_every_run_warns_in_one_line_while_the_contact_is_a_placeholder(tmp_path: Path, site: SiteServer) -> None:
    work = working_copy(tmp_path)
    env = fresh_shell_env(tmp_path)
    assert newsmon("init", work, env).returncode == 0  # no git email here: the placeholder
    point_at(work / "newsmon.toml", site)
    warning = (f"newsmon: warning: {work / 'newsmon.toml'}: [http] contact_url is a placeholder "
               f"({PLACEHOLDER_CONTACT}), sent in the User-Agent: set it to a web page or email address where site "
               "operators can reach you")
    for _ in range(2):
        res = newsmon("run --quiet", work, env)
        assert res.returncode == 0 and res.stderr.splitlines().count(warning) == 1, res.stderr[-3000:]
        assert res.stderr.count("contact_url") == 1
    config = work / "newsmon.toml"
    config.write_text(config.read_text().replace(f'contact_url = "{PLACEHOLDER_CONTACT}"',
                                                 'contact_url = "mailto:desk@newsroom.az"'))
    res = newsmon("run --quiet", work, env)
    assert res.returncode == 0 and "contact_url" not in res.stderr, res.stderr[-3000:]


def _read_until(fd: int, text: str, seen: bytearray, timeout_s: float = 120) -> str:
    """What the terminal showed up to and including `text` (waiting for it)."""
    deadline = time.monotonic() + timeout_s
    while text.encode() not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"no {text!r} on the terminal; it showed {bytes(seen)!r}")
        try:
            seen += os.read(fd, 4096)
        except OSError:  # the process closed the terminal
            raise AssertionError(f"no {text!r} on the terminal; it showed {bytes(seen)!r}") from None
    return seen.decode(errors="replace")


def test_init_on_a_terminal_asks_for_the_contact_until_it_gets_one(tmp_path: Path) -> None:
    work = working_copy(tmp_path)
    env = fresh_shell_env(tmp_path)
    Path(env["GIT_CONFIG_GLOBAL"]).write_text("[user]\n\temail = desk@newsroom.az\n")
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(work / ".venv/bin/newsmon"), "init"], cwd=work, env=env, stdin=slave, stdout=slave,
                            stderr=slave, start_new_session=True)
    os.close(slave)
    seen = bytearray()
    try:
        prompt = _read_until(master, "[mailto:desk@newsroom.az]: ", seen)  # git's address offered as the default
        assert "Where can site operators reach you" in prompt
        os.write(master, b"not a contact\n")
        _read_until(master, "expected a web page", seen)
        del seen[:seen.index(b"expected a web page")]  # the answer may come in the same read as the prompt after it
        _read_until(master, "[mailto:desk@newsroom.az]: ", seen)  # asked again
        os.write(master, b"https://newsroom.az/desk\n")
        _read_until(master, "User-Agent contact: https://newsroom.az/desk (entered)", seen)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        os.close(master)
    assert written_contact(work / "newsmon.toml") == "https://newsroom.az/desk"


# --- the systemd unit for `serve` --------------------------------------------------------------------------------

def unit_sections(text: str) -> dict[str, list[tuple[str, str]]]:
    """A unit file's sections as (key, value) lists (keys may repeat, as Environment= does)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        else:
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def unit_environment(service: list[tuple[str, str]]) -> dict[str, str]:
    """What systemd gives ExecStart: its own minimal environment, Environment= and EnvironmentFile= applied."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    for key, value in service:
        if key == "Environment":
            env |= dict(item.split("=", 1) for item in shlex.split(value))
        elif key == "EnvironmentFile":
            path = Path(value.removeprefix("-"))
            if path.exists():
                env |= dict(line.split("=", 1) for line in path.read_text().splitlines()
                            if "=" in line and not line.startswith("#"))
            else:
                assert value.startswith("-"), f"EnvironmentFile {value} is required but missing"
    return env


def deployments(ui: str) -> int:
    """How many deployments the Prefect server at `ui` has."""
    ask = urllib.request.Request(f"{ui}/api/deployments/count", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(ask, timeout=30) as r:
        return int(r.read())


@pytest.mark.slow
def test_the_systemd_unit_starts_serve_and_stops_it_cleanly(tmp_path: Path) -> None:
    work = working_copy(tmp_path)
    text = UNIT.read_text(encoding="utf-8").replace("/opt/newsmon", str(work))
    unit = tmp_path / "newsmon.service"
    unit.write_text(text, encoding="utf-8")
    (work / "newsmon.toml").write_text(
        '[warehouse]\npath = "data/newsmon.duckdb"\n[http]\nallow_private_networks = true\n'
        '[[feeds]]\nname = "x"\nurl = "http://127.0.0.1:9/feed.xml"\n')  # no contact: the journal says so
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=120)
        assert verify.returncode == 0 and str(unit) not in verify.stderr, verify.stderr
    service = unit_sections(text)["Service"]
    values = dict(service)
    assert values["KillSignal"] == "SIGTERM" and values["KillMode"] == "mixed" and values["Type"] == "simple"
    argv = shlex.split(values["ExecStart"].lstrip("-@+!:"))
    assert argv[1:] == ["serve"] and argv[0] == f"{work}/.venv/bin/newsmon"
    env = unit_environment(service) | {"HOME": str(tmp_path)}
    assert env["NEWSMON_CONFIG"] == f"{work}/newsmon.toml"

    for stop_when in ("serving", "announced"):  # `systemctl stop` once it serves, and right after it started
        log_path = tmp_path / f"journal-{stop_when}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, cwd=values["WorkingDirectory"], env=env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                deadline, ui = time.monotonic() + 240, None
                while ui is None and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.2)
                    found = re.search(r"^newsmon serve: .* Prefect UI at (http://127\.0\.0\.1:\d+)",
                                      log_path.read_text(), re.M)
                    ui = found.group(1) if found else None
                assert ui, log_path.read_text()[-3000:]
                if stop_when == "serving":
                    with urllib.request.urlopen(f"{ui}/api/health", timeout=30) as r:
                        assert r.status == 200
                    while deployments(ui) < 3 and proc.poll() is None and time.monotonic() < deadline:
                        time.sleep(0.5)  # serving: the three deployments registered on the server it started
                    assert deployments(ui) == 3, log_path.read_text()[-3000:]
                proc.send_signal(signal.SIGTERM)  # KillMode=mixed: SIGTERM to the main process
                code = proc.wait(timeout=120)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
        journal = log_path.read_text()
        assert code == 0, (stop_when, journal[-3000:])
        assert "Traceback" not in journal and f"newsmon serve: {work}/newsmon.toml" in journal
        assert f"newsmon: warning: {work}/newsmon.toml: [http] contact_url is a placeholder" in journal
        with pytest.raises(OSError):  # the Prefect server serve started is gone with it
            urllib.request.urlopen(f"{ui}/api/health", timeout=5)
    assert (work / ".prefect").is_dir()  # PREFECT_HOME from the unit
