"""Podman for the container test: settings that work on this kernel, a cached base and image,
and a record of everything a test makes so that it can all be removed.

No registry is reachable, so the base image is a Debian ``debootstrap --variant=minbase``
imported into podman (the Containerfile installs Debian's python3 into it with apt).  The
wheels are downloaded on the host (through pip's own configuration) and mounted into the
build, so the build needs no package index.  Both images are kept between runs: the base by
name, the node image by a digest of everything it is built from.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/pypaxos-test-base:bookworm"
IMAGE_REPOSITORY = "localhost/pypaxos-test"
MIRROR = "http://deb.debian.org/debian"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pypaxos-test"
# What the image is built from: a change to any of these builds a new image.
NOFILE_CAP = 16384
NPROC_CAP = 4096
IMAGE_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "requirements/runtime.lock", "deploy")


def why_unavailable() -> str | None:
    """Why this machine cannot run the container test, or ``None`` when it can."""
    if sys.platform != "linux" or os.geteuid() != 0:
        return "the container test runs as root only (rootful podman, a debootstrap base)"
    for tool in ("podman", "debootstrap"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} is not installed (`make packages` as root installs it)"
    if shutil.which("runc") is None and not Path("/usr/sbin/runc").exists():
        return "runc is not installed (`make packages` as root installs it)"
    return None


def containers_conf(directory: Path) -> Path:
    """A containers.conf for this kernel: runc (Debian's crun refuses hybrid cgroups), no
    systemd, and ulimits within the hard limits (podman's defaults exceed them).  The limits
    are the smaller of ours and a modest cap: a node needs a few hundred descriptors and a
    handful of threads, and podman runs its container monitor under a lower process limit
    (32768 here) than the shell's, so the shell's own hard limit can still be refused."""
    nofile, nproc = (
        cap if hard == resource.RLIM_INFINITY else min(hard, cap)
        for hard, cap in (
            (resource.getrlimit(resource.RLIMIT_NOFILE)[1], NOFILE_CAP),
            (resource.getrlimit(resource.RLIMIT_NPROC)[1], NPROC_CAP),
        )
    )
    path = directory / "containers.conf"
    path.write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
    )
    return path


@dataclass
class Podman:
    """Runs podman with the test's settings and remembers what it made."""

    conf: Path
    made_pods: list[str] = field(default_factory=list)
    made_volumes: list[str] = field(default_factory=list)
    made_networks: list[str] = field(default_factory=list)

    def run(
        self, *args: str, timeout_s: float = 120, check: bool = True, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = os.environ | {"CONTAINERS_CONF": str(self.conf)}
        done = subprocess.run(
            ["podman", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            input=input_text,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done

    def exists(self, kind: str, name: str) -> bool:
        return self.run(kind, "exists", name, check=False).returncode == 0

    def cleanup(self) -> list[str]:
        """Remove every pod (with its containers), volume and network made; the problems."""
        problems = []
        pods = list(dict.fromkeys(self.made_pods))
        for pod in pods:
            for container in self._containers_of(pod):
                self.made_volumes += self._volumes_of(container)
        # One command for every pod, killed at once (``-t 0``): their data is thrown away, so
        # waiting for each to stop gracefully would only cost seconds per pod.
        remove = ("pod", "rm", "--force", "--ignore", "-t", "0")
        if pods and self.run(*remove, *pods, check=False).returncode != 0:
            for pod in pods:
                done = self.run(*remove, pod, check=False)
                if done.returncode != 0:
                    problems.append(f"pod {pod}: {done.stderr.strip()}")
        for volume in dict.fromkeys(self.made_volumes):
            if self.exists("volume", volume):
                done = self.run("volume", "rm", "--force", volume, check=False)
                if done.returncode != 0:
                    problems.append(f"volume {volume}: {done.stderr.strip()}")
        for network in self.made_networks:
            if self.exists("network", network):
                done = self.run("network", "rm", "--force", network, check=False)
                if done.returncode != 0:
                    problems.append(f"network {network}: {done.stderr.strip()}")
        return problems

    def _containers_of(self, pod: str) -> list[str]:
        done = self.run("pod", "inspect", pod, check=False)
        if done.returncode != 0:
            return []
        found = json.loads(done.stdout)
        found = found[0] if isinstance(found, list) else found
        return [c["Name"] for c in found.get("Containers") or []]

    def _volumes_of(self, container: str) -> list[str]:
        done = self.run("container", "inspect", container, check=False)
        if done.returncode != 0:
            return []
        mounts = json.loads(done.stdout)[0].get("Mounts") or []
        return [m["Name"] for m in mounts if m.get("Type") == "volume" and m.get("Name")]


def ensure_base_image(podman: Podman) -> bool:
    """The Debian base, made once (debootstrap, then ``podman import``); whether it was made."""
    if podman.exists("image", BASE_IMAGE):
        return False
    with tempfile.TemporaryDirectory(prefix="pypaxos-rootfs-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
        done = subprocess.run(
            [debootstrap, "--variant=minbase", "bookworm", str(rootfs), MIRROR],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"debootstrap failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        archive = Path(scratch) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], check=True)
        podman.run(
            "import",
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change",
            'CMD ["/bin/bash"]',
            str(archive),
            BASE_IMAGE,
            timeout_s=300,
        )
    return True


def image_digest() -> str:
    """A digest of every file the image is built from (src/, the lock, deploy/, ...)."""
    digest = hashlib.sha256()
    paths = [ROOT / name for name in IMAGE_INPUTS] + [ROOT / "src"]
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += [
                p
                for p in path.rglob("*")
                if p.is_file()
                and "__pycache__" not in p.parts
                and ".egg-info" not in str(p)
                and p.suffix != ".whl"
            ]
        else:
            files.append(path)
    for file in sorted(files):
        digest.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def ensure_node_image(podman: Podman) -> tuple[str, bool]:
    """The node image built from this checkout, cached by ``image_digest``; (name, built now)."""
    image = f"{IMAGE_REPOSITORY}:{image_digest()}"
    if podman.exists("image", image):
        return image, False
    wheels = CACHE_DIR / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    lock = ROOT / "requirements" / "runtime.lock"
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
    pip += ["--no-deps", "--require-hashes", "--only-binary=:all:", "--dest", str(wheels)]
    subprocess.run(
        [*pip, "--requirement", str(lock)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    podman.run(
        "build",
        "--file",
        str(ROOT / "deploy" / "Containerfile"),
        "--build-arg",
        f"BASE={BASE_IMAGE}",
        "--volume",
        f"{wheels}:/build/wheels:ro",
        "--tag",
        image,
        str(ROOT),
        timeout_s=900,
    )
    # Older builds of this test's image are of no more use; their shared layers stay.
    listed = podman.run("images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_REPOSITORY)
    for old in listed.stdout.split():
        if old != image:
            podman.run("rmi", old, check=False)
    return image, True
