"""The generator's image: pinned, non-root, and its build steps work on the real tree.

There is no Docker engine here, so the build stage's COPY and RUN lines are replayed
with uv in a scratch directory (with this machine's Python rather than the image's),
and the runtime stage's layout (the environment plus the entry script) is run.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from tests.support.dockerfile import instructions
from tests.support.paths import ROOT
from tests.support.service import RunningService
from tests.support.tools import require_tool
from tests.support.traffic_gen import roll_lines

DOCKERFILE = ROOT / "traffic-gen" / "Dockerfile"


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions(DOCKERFILE):
        if keyword == "FROM":
            result.append([])
        result[-1].append((keyword, rest))
    return result


def test_images_are_pinned_and_the_user_is_not_root() -> None:
    bases = [rest.split()[0] for keyword, rest in instructions(DOCKERFILE) if keyword == "FROM"]
    assert bases
    for base in bases:
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+", base), base
    runtime = stages()[-1]
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert any(re.search(r"uv==\d+\.\d+\.\d+", rest) for _, rest in stages()[0])


def test_copied_paths_exist_from_the_repository_root() -> None:
    """Compose builds with the repository root as context; every COPY source must be there."""
    for keyword, rest in instructions(DOCKERFILE):
        if keyword == "COPY" and not rest.startswith("--from"):
            *sources, _ = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_compose_can_run_the_spec_script_in_the_image() -> None:
    """The image's command, and the compose file's if present, run generate_traffic.py."""
    runtime = stages()[-1]
    workdir = [rest for keyword, rest in runtime if keyword == "WORKDIR"][-1]
    copied = [rest.split() for keyword, rest in runtime if keyword == "COPY"]
    assert ["traffic-gen/generate_traffic.py", workdir + "/"] in copied
    command = [rest for keyword, rest in runtime if keyword == "CMD"][-1]
    assert '"generate_traffic.py"' in command
    assert '"http://dice-roller:8000"' in command


def test_build_steps_replayed_give_a_working_generator(
    tmp_path: Path, dice_service: RunningService
) -> None:
    uv = require_tool("uv", "the image is built with uv")
    build = stages()[0]
    venv = tmp_path / "venv"
    env = {**os.environ}
    workdir = tmp_path / "src"
    workdir.mkdir()
    for keyword, rest in build:
        if keyword == "ENV":
            for name, value in re.findall(r"(\w+)=(\S+)", rest):
                env[name] = value.replace("/app/.venv", str(venv))
        elif keyword == "COPY":
            *sources, dest = rest.split()
            for source in sources:
                target = workdir / dest
                if (ROOT / source).is_dir():
                    shutil.copytree(
                        ROOT / source,
                        target,
                        ignore=shutil.ignore_patterns("__pycache__", ".venv"),
                        dirs_exist_ok=True,
                    )
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy(ROOT / source, target)
        elif keyword == "RUN" and rest.startswith("uv "):
            subprocess.run([uv, *shlex.split(rest)[1:]], cwd=workdir, env=env, check=True)
    # The runtime stage: the environment, the script, and nothing else.
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(ROOT / "traffic-gen" / "generate_traffic.py", app)
    run_env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    # The fair die only: two users each rolling the risky die twice all failed one run
    # in 40,000, and a run where every roll fails exits 1.
    done = subprocess.run(
        [venv / "bin" / "python", "generate_traffic.py", "--url", dice_service.url,
         "--users", "2", "--rolls", "2", "--think", "0", "--risky-share", "0"],
        cwd=app,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(roll_lines(done.stdout)) == 4
    installed = subprocess.run(
        [venv / "bin" / "python", "-c", "import traffic_gen; print(traffic_gen.__file__)"],
        cwd=app,
        env=run_env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "site-packages" in installed  # installed, not a link back into the source tree
