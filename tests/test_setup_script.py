"""scripts/setup.sh and the wheel: what a new user gets from the README's first command.

Two kinds of test. The quick ones run the real script with stand-ins for apt-get, dpkg-query and the
Python it is given (installing packages for real is not something a quick test can do), and check its
decisions: what it asks apt for, where the virtual environment goes, what pip is asked to install, the
link in ~/.local/bin and the line a login shell needs to find it. The slow ones do it for real: the set-up
with the distribution's own Python (Debian's is "externally managed", PEP 668) in a fresh HOME with only
the system PATH, then a new login shell that finds ``midframe`` and converts a clip; and the wheel from
``python -m build`` installed alone in a new virtual environment, converting a clip from there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.media import make_clip, probe_json

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBIAN_PYTHON = Path("/usr/bin/python3")

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="setup.sh is for Linux here")
as_root = pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                             reason="the script's apt branch runs as root on Linux")

# The stand-in Python: `-m venv DIR` makes DIR/bin/python (itself) and DIR/bin/midframe (a recorder).
FAKE_PYTHON = r"""#!/bin/sh
echo "$0 $*" >> "$LOG"
case "$*" in
  -V) echo "Python 3.11.9" ;;
  "-m venv "*)
    for dir; do :; done
    mkdir -p "$dir/bin"
    cp "$0" "$dir/bin/python"
    printf '#!/bin/sh\necho "midframe $*" >> "$LOG"\n' > "$dir/bin/midframe"
    chmod +x "$dir/bin/midframe" ;;
  "-m pip install"*tray-linux*) [ -z "$PIP_TRAY_FAILS" ] ;;
  "-m pip install torch==2.13.0+cpu") [ -z "$FAKE_NO_LOCAL_CPU_TORCH" ] ;;
  "-m pip install"*) ;;
  *"import torch"*) [ -n "$FAKE_TORCH" ] && echo 2.9.0+cu130 ;;
  *"import gi"*) exit 1 ;;
  *"import ensurepip"*) [ -z "$FAKE_NO_ENSUREPIP" ] || [ -e "$FAKE_ROOT/python3-venv-installed" ] ;;
  *"version_info[:2]"*) echo 3.11 ;;
  *"print(sys.executable)"*) echo "$0" ;;
esac
"""
FAKE_APT = r"""#!/bin/sh
echo "apt-get $*" >> "$LOG"
case "$*" in *python3-venv*) touch "$FAKE_ROOT/python3-venv-installed" ;; esac
"""
FAKE_DPKG_QUERY = r"""#!/bin/sh
[ -n "$FAKE_ALL_INSTALLED" ] && printf 'install ok installed'
"""


def fake_setup(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
               home_files: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, list[str], Path]:
    """Run a copy of setup.sh (so --dev's ./.venv lands in tmp_path) with the stand-ins; returns the
    result, the calls (paths shortened to python, venv/python, midframe) and the HOME it used."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "scripts" / "setup.sh", repo / "scripts" / "setup.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("apt-get", FAKE_APT), ("apt-cache", "#!/bin/sh\nexit 0\n"),
                       ("dpkg-query", FAKE_DPKG_QUERY), ("python", FAKE_PYTHON)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    home = tmp_path / "home"
    if not home.exists():
        home.mkdir()
        for name, text in (home_files or {}).items():
            (home / name).write_text(text)
    log = tmp_path / "calls.log"
    log.unlink(missing_ok=True)
    base = {"PATH": f"{bin_dir}:{SYSTEM_PATH}", "HOME": str(home), "LOG": str(log), "FAKE_ROOT": str(tmp_path),
            "PYTHON": str(bin_dir / "python")}
    done = subprocess.run(["bash", str(repo / "scripts" / "setup.sh"), *args], capture_output=True, text=True,
                          timeout=120, env={**base, **(env or {})})
    calls = log.read_text().splitlines() if log.exists() else []
    short = [call.replace(str(home / ".local/share/midframe/venv/bin/python"), "venv/python")
                 .replace(str(repo / ".venv/bin/python"), "dev-venv/python")
                 .replace(str(bin_dir / "python"), "python") for call in calls]
    return done, short, home


def login_shell(home: Path, command: str, **kwargs) -> subprocess.CompletedProcess:
    """``command`` in a new login shell of a user whose HOME is ``home``, with only the system PATH."""
    return subprocess.run(["env", "-i", f"HOME={home}", f"PATH={SYSTEM_PATH}", "LANG=C.UTF-8", "bash", "-lc", command],
                          capture_output=True, text=True, **kwargs)


def skel(*names: str) -> dict[str, str]:
    """A new Debian user's dot files (/etc/skel), or the same lines where the machine has none."""
    fallback = {".profile": 'if [ -d "$HOME/.local/bin" ] ; then\n    PATH="$HOME/.local/bin:$PATH"\nfi\n'}
    found = {}
    for name in names:
        path = Path("/etc/skel") / name
        found[name] = path.read_text() if path.is_file() else fallback.get(name, "")
    return found


# --- decisions (stand-ins) -----------------------------------------------------------------------


@as_root
def test_a_plain_setup_on_a_desktop_installs_the_tray_menu(tmp_path):
    done, calls, home = fake_setup(tmp_path, env={"DISPLAY": ":0"}, home_files=skel(".profile"))
    assert done.returncode == 0, done.stderr
    install = next(call for call in calls if call.startswith("apt-get install"))
    assert "ffmpeg" in install and "gir1.2-gtk-3.0" in install and "libgirepository1.0-dev" in install
    assert "xvfb" not in install and "python3-venv" not in install  # the test desktop is --dev only
    assert "venv/python -m pip install .[tray-linux]" in calls  # a copy, not an editable install
    assert calls[-1] == "midframe models fetch"
    assert "==> installing with apt: ffmpeg" in done.stdout  # it says what it does


@linux_only
def test_without_a_desktop_nothing_for_the_tray(tmp_path):
    done, calls, home = fake_setup(tmp_path, env={"FAKE_ALL_INSTALLED": "1"}, home_files=skel(".profile"))
    assert done.returncode == 0, done.stderr
    assert not any("gir1.2" in call or "tray-linux" in call for call in calls)
    assert not any(call.startswith("apt-get") for call in calls)  # nothing missing: no apt-get update either
    assert "venv/python -m pip install ." in calls


@as_root
def test_when_pygobject_does_not_build_it_says_so(tmp_path):
    done, calls, home = fake_setup(tmp_path, env={"DISPLAY": ":0", "PIP_TRAY_FAILS": "1"})
    assert done.returncode == 0
    assert "venv/python -m pip install ." in calls  # midframe itself still installed
    assert "the tray icon will have no menu" in done.stderr and "apt-get install libgirepository1.0-dev" in done.stderr


@linux_only
def test_it_makes_a_venv_in_the_standard_place_and_links_midframe_into_local_bin(tmp_path):
    done, calls, home = fake_setup(tmp_path, env={"FAKE_ALL_INSTALLED": "1"}, home_files=skel(".profile"))
    assert done.returncode == 0, done.stderr
    venv = home / ".local/share/midframe/venv"
    assert calls[0:1] == ["python -c import sys; sys.exit(sys.version_info < (3, 11))"]
    assert f"python -m venv {venv}" in calls  # its own packages only: nothing to share from that Python
    torch = [call for call in calls if "pip install torch" in call]
    assert torch and all("torch==2.13.0" in call for call in torch)
    link = home / ".local/bin/midframe"
    assert link.is_symlink() and link.resolve() == (venv / "bin/midframe").resolve()
    # Debian's ~/.profile puts ~/.local/bin on PATH when it exists at login: left as it was.
    assert (home / ".profile").read_text() == skel(".profile")[".profile"]
    assert login_shell(home, "command -v midframe").stdout.strip() == str(link)
    assert "~/.local/bin/midframe run" in done.stdout  # this shell's PATH has no ~/.local/bin


@linux_only
def test_a_login_that_would_not_find_it_gets_a_line_in_the_profile(tmp_path):
    done, calls, home = fake_setup(tmp_path, env={"FAKE_ALL_INSTALLED": "1"})  # no ~/.profile at all
    assert done.returncode == 0, done.stderr
    assert "==> added ~/.local/bin to PATH in" in done.stdout
    assert login_shell(home, "command -v midframe").stdout.strip() == str(home / ".local/bin/midframe")
    again, _, _ = fake_setup(tmp_path, env={"FAKE_ALL_INSTALLED": "1"})
    assert again.returncode == 0, again.stderr
    assert (home / ".profile").read_text().count("~/.local/bin on PATH") == 1


@linux_only
def test_a_bash_profile_that_hides_profile_gets_the_line_too(tmp_path):
    done, calls, home = fake_setup(tmp_path, env={"FAKE_ALL_INSTALLED": "1"},
                                   home_files={".bash_profile": "export EDITOR=vi\n", **skel(".profile")})
    assert done.returncode == 0, done.stderr
    assert "~/.local/bin on PATH" in (home / ".bash_profile").read_text()
    assert login_shell(home, "command -v midframe").stdout.strip() == str(home / ".local/bin/midframe")


@linux_only
def test_no_modify_path_leaves_the_profile_alone(tmp_path):
    done, calls, home = fake_setup(tmp_path, "--no-modify-path", env={"FAKE_ALL_INSTALLED": "1"})
    assert done.returncode == 0, done.stderr
    assert not (home / ".profile").exists()
    assert "will not have" in done.stderr


@linux_only
def test_a_torch_of_the_users_own_is_kept(tmp_path):
    done, calls, home = fake_setup(tmp_path, env={"FAKE_ALL_INSTALLED": "1", "FAKE_TORCH": "1"})
    assert done.returncode == 0, done.stderr
    assert f"python -m venv --system-site-packages {home}/.local/share/midframe/venv" in calls
    assert not any("pip install torch" in call for call in calls)
    assert "keeping the torch 2.9.0+cu130" in done.stdout


@linux_only
def test_where_pips_sources_have_no_cpu_torch_it_asks_pytorchs_cpu_index(tmp_path):
    if os.uname().machine != "x86_64" or Path("/proc/driver/nvidia/version").exists():
        pytest.skip("the CPU build is chosen on Linux x86_64 without an NVIDIA GPU")
    done, calls, home = fake_setup(tmp_path, env={"FAKE_ALL_INSTALLED": "1", "FAKE_NO_LOCAL_CPU_TORCH": "1"})
    assert done.returncode == 0, done.stderr
    torch = [call for call in calls if "pip install" in call and "torch==" in call]
    assert torch == ["venv/python -m pip install torch==2.13.0+cpu",
                     "venv/python -m pip install --extra-index-url https://download.pytorch.org/whl/cpu torch==2.13.0+cpu"]
    assert "asking PyTorch's CPU index" in done.stdout


@linux_only
def test_with_an_nvidia_gpu_it_takes_pypis_cuda_build(tmp_path):
    if os.uname().machine != "x86_64":
        pytest.skip("PyPI's torch is the CUDA build on Linux x86_64")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100'\n")
    (tmp_path / "bin" / "nvidia-smi").chmod(0o755)
    done, calls, home = fake_setup(tmp_path, env={"FAKE_ALL_INSTALLED": "1"})
    assert done.returncode == 0, done.stderr
    assert [call for call in calls if "pip install" in call and "torch==" in call] == [
        "venv/python -m pip install torch==2.13.0"]
    assert "CUDA build" in done.stdout


@as_root
def test_python3_venv_is_installed_when_the_system_python_lacks_it(tmp_path):
    done, calls, home = fake_setup(tmp_path, env={"FAKE_NO_ENSUREPIP": "1"})
    assert done.returncode == 0, done.stderr
    install = next(call for call in calls if call.startswith("apt-get install"))
    assert "python3-venv" in install and "python3.11-venv" in install


@linux_only
def test_a_python_that_cannot_make_a_venv_names_the_package(tmp_path):
    done, calls, home = fake_setup(tmp_path, env={"FAKE_NO_ENSUREPIP": "1", "FAKE_ALL_INSTALLED": "1"})
    assert done.returncode != 0
    assert "apt-get install python3-venv python3.11-venv" in done.stderr


@linux_only
def test_dev_installs_editable_into_the_clones_venv(tmp_path):
    done, calls, home = fake_setup(tmp_path, "--dev", env={"FAKE_ALL_INSTALLED": "1"})
    assert done.returncode == 0, done.stderr
    assert f"python -m venv {tmp_path}/repo/.venv" in calls
    assert "dev-venv/python -m pip install -e .[dev,tray-linux]" in calls
    assert calls[-1] == "midframe models fetch"
    assert not (home / ".local/bin/midframe").exists()  # the tests' venv is not the user's midframe
    assert ".venv/bin/python -m pytest" in done.stdout


# --- for real ------------------------------------------------------------------------------------


def source_copy(dest: Path) -> Path:
    """The working tree's files (tracked and new, not ignored): what a clone holds, without build output."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, text=True)
    if listed.returncode != 0:
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info",
                                                                  "__pycache__", ".pytest_cache"))
        return dest
    for name in filter(None, listed.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def pip_settings() -> dict[str, str]:
    """This machine's pip settings (PIP_* and the user's pip.conf), which say where a local torch wheel or a
    mirror is; a fresh HOME would lose the pip.conf."""
    env = {key: value for key, value in os.environ.items() if key.startswith("PIP_")}
    for conf in (Path.home() / ".config/pip/pip.conf", Path.home() / ".pip/pip.conf"):
        if conf.is_file() and "PIP_CONFIG_FILE" not in env:
            env["PIP_CONFIG_FILE"] = str(conf)
    return env


def ten_frame_clip(folder: Path) -> Path:
    return make_clip(folder / "ten frames.mp4", seconds=0.4, fps="25", size="64x48")


def frame_count(path: Path) -> int:
    video = next(s for s in probe_json(path)["streams"] if s["codec_type"] == "video")
    return int(video["nb_read_frames"])


def has_setuptools(major: int) -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= major


def can_make_venv(python: Path) -> bool:
    return subprocess.run([str(python), "-c", "import ensurepip, venv, sys; sys.exit(sys.version_info < (3, 11))"],
                          capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.skipif(not sys.platform.startswith("linux") or not DEBIAN_PYTHON.exists(), reason="needs /usr/bin/python3")
def test_setup_with_the_distribution_python_in_a_fresh_home_gives_a_login_a_working_midframe(tmp_path):
    if not can_make_venv(DEBIAN_PYTHON) and os.geteuid() != 0:
        pytest.skip("/usr/bin/python3 cannot make a venv here (python3-venv missing) and this is not root")
    clone = source_copy(tmp_path / "clone")
    home = tmp_path / "home"
    home.mkdir()
    for name, text in skel(".profile", ".bashrc").items():
        (home / name).write_text(text)
    env = {"HOME": str(home), "PATH": SYSTEM_PATH, "LANG": "C.UTF-8", "PYTHON": str(DEBIAN_PYTHON), **pip_settings(),
           "PIP_COMPILE": "0"}  # no .pyc files written at install (torch's thousands): a third off this test's time
    done = subprocess.run(["bash", "scripts/setup.sh"], cwd=clone, env=env, capture_output=True, text=True, timeout=1100)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for step in ("==> creating the virtual environment", "==> installing midframe", "==> fetching the RIFE"):
        assert step in done.stdout

    link = home / ".local/bin/midframe"
    assert login_shell(home, "command -v midframe").stdout.strip() == str(link)
    assert login_shell(home, "midframe --help", timeout=60).returncode == 0
    work = tmp_path / "work"
    work.mkdir()
    ten_frame_clip(work)
    converted = login_shell(home, f"cd '{work}' && midframe interpolate 'ten frames.mp4' -o out.mp4 --engine dis "
                                  "--factor 2 --report report.json", timeout=300)
    assert converted.returncode == 0, converted.stderr[-3000:]
    assert frame_count(work / "out.mp4") == 20
    assert json.loads((work / "report.json").read_text())["frames_out"] == 20
    # The installed copy runs, not the clone's source: the clone can go.
    where = login_shell(home, f"cd '{work}' && ~/.local/share/midframe/venv/bin/python -c 'import midframe; print(midframe.__file__)'")
    assert where.stdout.strip().startswith(str(home / ".local/share/midframe/venv/"))
    assert (home / ".cache/midframe/models/rife.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_wheel_from_python_build_holds_everything_and_runs_alone_in_a_new_venv(tmp_path):
    pytest.importorskip("build", reason="`python -m build` (scripts/setup.sh --dev installs it)")
    base_python = Path(getattr(sys, "_base_executable", sys.executable))
    if not can_make_venv(base_python):
        pytest.skip(f"{base_python} cannot make a venv")
    source = source_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    # The sdist, then the wheel built from it (so a file the sdist leaves out is missing from the wheel too);
    # with this environment's setuptools where it is new enough, else in build's own isolated environments.
    isolation = ["--no-isolation"] if has_setuptools(68) else []
    built = subprocess.run([sys.executable, "-m", "build", *isolation, "--outdir", str(dist), str(source)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = dist.glob("midframe-*.whl")
    (sdist,) = dist.glob("midframe-*.tar.gz")

    # Every file of the package (code, the dashboard's page, the example config...) is in both.
    package = sorted(str(path.relative_to(source)) for path in (source / "midframe").rglob("*")
                     if path.is_file() and "__pycache__" not in path.parts)
    assert "midframe/web/static/index.html" in package and "midframe/config.example.yaml" in package
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
    assert [name for name in package if name not in in_wheel] == []
    with tarfile.open(sdist) as archive:
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert [name for name in package + ["README.md", "pyproject.toml"] if name not in in_sdist] == []

    venv = tmp_path / "venv"
    subprocess.run([str(base_python), "-m", "venv", str(venv)], check=True, timeout=300)
    import torch

    install = subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "--no-compile", f"torch=={torch.__version__}",
                              str(wheel)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    home = tmp_path / "home"
    home.mkdir()
    alone = {"HOME": str(home), "PATH": f"{venv / 'bin'}:{SYSTEM_PATH}", "LANG": "C.UTF-8"}
    ten_frame_clip(tmp_path)
    converted = subprocess.run([str(venv / "bin/midframe"), "interpolate", "ten frames.mp4", "-o", "out.mp4", "--engine",
                                "dis", "--factor", "2"], cwd=tmp_path, env=alone, capture_output=True, text=True,
                               timeout=300)
    assert converted.returncode == 0, converted.stderr[-3000:]
    assert frame_count(tmp_path / "out.mp4") == 20
    initialised = subprocess.run([str(venv / "bin/midframe"), "config", "init"], cwd=tmp_path, env=alone,
                                 capture_output=True, text=True, timeout=120)
    assert initialised.returncode == 0, initialised.stderr
    where = subprocess.run([str(venv / "bin/midframe"), "config", "path"], cwd=tmp_path, env=alone, capture_output=True,
                           text=True, timeout=120)
    written = Path(where.stdout.strip())
    assert written.is_relative_to(home) and "engine:" in written.read_text()  # the example config, from the wheel
    page = subprocess.run([str(venv / "bin/python"), "-c", "from importlib import resources; "
                           "print(resources.files('midframe.web').joinpath('static/index.html').read_text()[:200])"],
                          cwd=tmp_path, env=alone, capture_output=True, text=True, timeout=60)
    assert page.returncode == 0 and "<" in page.stdout, page.stderr
