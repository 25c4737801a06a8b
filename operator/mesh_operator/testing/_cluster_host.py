"""The host side of the single-node cluster: egress guard, CNI bridge, sysctls, iptables cleanup, mounts, cgroups.

Everything here changes the machine (it needs root) and is undone by the matching function, which is safe to call
after a failed or killed run: it works from what is on the host now, not from what this process remembers.
See docs/cluster-test-tier.md and the team's REAL-CLUSTER notes for why each setting exists.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import ipaddress
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

BRIDGE = "cni0"
NODE_IP = "10.244.0.1"
NODE_POD_CIDR = "10.244.0.0/24"
POD_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
#: Inside the pod CIDR, outside the node's /24: routed toward the real interface, so the guard must drop it.
GUARD_PROBE_ADDRESS = "10.244.255.254"

GUARD_CHAIN = "MESHWORK-EGRESS-GUARD"
#: (table, built-in chain) pairs the guard hooks into, first rule of each. kube-proxy prepends its own jumps to
#: filter FORWARD/OUTPUT later; mangle POSTROUTING is a chain it never touches, so that hook stays first.
_GUARD_HOOKS = (("filter", "OUTPUT"), ("filter", "FORWARD"), ("mangle", "POSTROUTING"))

#: Sysctls the kubelet and the bridge plugin change; recorded before start and restored at teardown.
SYSCTLS = (
    "net.ipv4.ip_forward",
    "vm.overcommit_memory",
    "kernel.panic",
    "kernel.panic_on_oops",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
)

#: Chains other components leave behind (kube-proxy, kubelet, CNI portmap/bridge), removed at teardown.
_FOREIGN_CHAIN = re.compile(r"^(KUBE-|CNI-)")


class HostError(RuntimeError):
    """A host change failed (the message has the command and its output)."""


def run(argv: list[str], *, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise HostError(f"{' '.join(argv)}: {err}") from err
    if check and done.returncode != 0:
        raise HostError(f"{' '.join(argv)} exited {done.returncode}: {(done.stderr or done.stdout).strip()}")
    return done


# --- egress guard ---------------------------------------------------------------------------------------------


def outbound_interfaces() -> list[str]:
    """The machine's own interfaces (everything but loopback, the bridge and pod veths), default route first."""
    names = sorted(p.name for p in Path("/sys/class/net").iterdir())
    default = [
        line.split(" dev ", 1)[1].split()[0]
        for line in run(["ip", "-4", "route", "show", "default"], check=False).stdout.splitlines()
        if " dev " in line
    ]
    others = [n for n in names if n not in default and n != "lo" and n != BRIDGE and not n.startswith("veth")]
    return list(dict.fromkeys(default + others))


def _iptables(family: int, table: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    binary = "iptables" if family == 4 else "ip6tables"
    return run([binary, "-w", "10", "-t", table, *args], check=check)


def install_guard(interfaces: list[str]) -> None:
    """DROP everything toward the pod/service CIDRs, or from the pod CIDR, that would leave by `interfaces`."""
    if not interfaces:
        raise HostError("no outbound interface found to guard (ip route show default is empty)")
    remove_guard()
    for table in dict.fromkeys(t for t, _ in _GUARD_HOOKS):
        _iptables(4, table, "-N", GUARD_CHAIN)
        for iface in interfaces:
            for match in (["-d", POD_CIDR], ["-d", SERVICE_CIDR], ["-s", POD_CIDR]):
                _iptables(4, table, "-A", GUARD_CHAIN, "-o", iface, *match, "-j", "DROP")
    for table, chain in _GUARD_HOOKS:
        _iptables(4, table, "-I", chain, "1", "-j", GUARD_CHAIN)
    _iptables(6, "filter", "-N", GUARD_CHAIN)
    for iface in interfaces:
        _iptables(6, "filter", "-A", GUARD_CHAIN, "-o", iface, "-j", "DROP")
    _iptables(6, "filter", "-I", "FORWARD", "1", "-j", GUARD_CHAIN)


def _guard_output_drops() -> int:
    out = _iptables(4, "filter", "-L", GUARD_CHAIN, "-v", "-x", "-n").stdout
    return sum(int(line.split()[0]) for line in out.splitlines() if line.split()[:1] and line.split()[0].isdigit())


def check_guard() -> int:
    """Send one UDP packet toward an unused pod-CIDR address; the guard must drop it (its counter rises)."""
    before = _guard_output_drops()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(b"meshwork egress guard probe", (GUARD_PROBE_ADDRESS, 9))
            sent_error = 0
        except OSError as err:
            sent_error = err.errno or 0
    after = _guard_output_drops()
    if after <= before:
        raise HostError(
            f"the egress guard did not drop a probe toward {GUARD_PROBE_ADDRESS} (counter {before} -> {after}); "
            "refusing to start a cluster whose pods could reach the network"
        )
    if sent_error not in (errno.EPERM, errno.EACCES):
        raise HostError(f"the guard's probe toward {GUARD_PROBE_ADDRESS} was not refused locally (errno {sent_error})")
    return after - before


def guard_installed() -> bool:
    return _iptables(4, "filter", "-S", GUARD_CHAIN, check=False).returncode == 0


def remove_guard() -> None:
    for table, chain in _GUARD_HOOKS:
        while _iptables(4, table, "-D", chain, "-j", GUARD_CHAIN, check=False).returncode == 0:
            pass
    for table in dict.fromkeys(t for t, _ in _GUARD_HOOKS):
        _iptables(4, table, "-F", GUARD_CHAIN, check=False)
        _iptables(4, table, "-X", GUARD_CHAIN, check=False)
    while _iptables(6, "filter", "-D", "FORWARD", "-j", GUARD_CHAIN, check=False).returncode == 0:
        pass
    _iptables(6, "filter", "-F", GUARD_CHAIN, check=False)
    _iptables(6, "filter", "-X", GUARD_CHAIN, check=False)


# --- bridge, sysctls --------------------------------------------------------------------------------------------


def create_bridge() -> None:
    """cni0 with the node address, up before the apiserver binds to it (there is no dummy netdev here)."""
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        delete_bridge()
    net = ipaddress.ip_network(NODE_POD_CIDR)
    run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "addr", "add", f"{NODE_IP}/{net.prefixlen}", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])
    # Node-originated traffic to a ClusterIP (the API server calling a webhook Service) would otherwise be routed
    # by the default route: kube-proxy's DNAT to the pod IP does not reroute it here, and the egress guard drops it
    # on the real interface. The whole service CIDR stays on the bridge (removed with it).
    run(["ip", "route", "add", SERVICE_CIDR, "dev", BRIDGE, "src", NODE_IP])


def delete_bridge() -> None:
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        run(["ip", "link", "del", BRIDGE], check=False)


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls() -> dict[str, str]:
    values = {}
    for name in SYSCTLS:
        with contextlib.suppress(OSError):
            values[name] = _sysctl_path(name).read_text().strip()
    return values


def write_sysctl(name: str, value: str) -> None:
    try:
        _sysctl_path(name).write_text(value + "\n")
    except OSError as err:
        raise HostError(f"cannot set {name}={value}: {err}") from err


def restore_sysctls(saved: dict[str, str]) -> list[str]:
    """Put back the recorded values; returns the names that could not be restored."""
    failed = []
    for name, value in saved.items():
        try:
            if _sysctl_path(name).read_text().strip() != value:
                write_sysctl(name, value)
        except (OSError, HostError):
            failed.append(name)
    return failed


# --- iptables left by kube-proxy / kubelet / CNI -----------------------------------------------------------------


def remove_foreign_chains() -> None:
    """Delete every KUBE-* / CNI-* chain and the rules jumping to them, in all tables, IPv4 and IPv6."""
    for family, save in ((4, "iptables-save"), (6, "ip6tables-save")):
        dump = run([save], check=False).stdout
        table = ""
        chains: dict[str, list[str]] = {}
        jumps: list[tuple[str, list[str]]] = []
        for line in dump.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                name = line[1:].split()[0]
                if _FOREIGN_CHAIN.match(name):
                    chains.setdefault(table, []).append(name)
            elif line.startswith("-A "):
                parts = line.split()
                target = parts[parts.index("-j") + 1] if "-j" in parts else ""
                if _FOREIGN_CHAIN.match(target) and not _FOREIGN_CHAIN.match(parts[1]):
                    jumps.append((table, parts[1:]))
        for tbl, rule in jumps:
            # iptables-save quotes comments; the rule as listed is accepted back by -D when split naively, except
            # for quoted comments, which -D matches by the rest of the rule anyway: drop them.
            _iptables(family, tbl, "-D", *_strip_comments(rule), check=False)
        for tbl, names in chains.items():
            for name in names:
                _iptables(family, tbl, "-F", name, check=False)
            for name in names:
                _iptables(family, tbl, "-X", name, check=False)


def _strip_comments(rule: list[str]) -> list[str]:
    out: list[str] = []
    skipping = False
    i = 0
    while i < len(rule):
        tok = rule[i]
        if tok == "-m" and i + 1 < len(rule) and rule[i + 1] == "comment":
            i += 2
            skipping = True
            continue
        if skipping and tok == "--comment":
            i += 1
            if i < len(rule) and rule[i].startswith('"'):
                while i < len(rule) and not rule[i].endswith('"'):
                    i += 1
            i += 1
            skipping = False
            continue
        out.append(tok)
        i += 1
    return out


# --- mounts, cgroups, processes ---------------------------------------------------------------------------------


def unmount_under(root: Path) -> None:
    """Lazily unmount everything mounted at or below `root`, deepest first (netns, volumes, overlay rootfs)."""
    prefix = str(root.resolve())
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    for point in sorted(set(points), key=lambda p: p.count("/"), reverse=True):
        run(["umount", "-l", point], check=False)


def remove_cgroups(names: tuple[str, ...] = ("kubepods", "kubepods.slice")) -> None:
    """rmdir the kubelet's cgroup trees (leaves first) in every mounted hierarchy."""
    base = Path("/sys/fs/cgroup")
    tops = [d / n for d in [base, *base.iterdir()] if d.is_dir() for n in names if (d / n).is_dir()]
    for top in tops:
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: w[0].count("/"), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def pids_running(executable: Path) -> list[int]:
    """PIDs whose /proc/<pid>/exe is `executable` (to end leftover shims by PID, never by name)."""
    target = str(executable.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "exe") == target:
                    found.append(int(entry.name))
    return found


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and not _zombie(p)]
        if alive:
            time.sleep(0.1)
    return alive


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def pause_archive(pause: Path, image: str, cache: Path) -> Path:
    """An OCI archive holding only the static pause binary, cached by the binary's content."""
    digest = hashlib.sha256(pause.read_bytes()).hexdigest()[:16]
    archive = cache / f"pause-{digest}.oci.tar"
    if archive.is_file():
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="meshwork-pause-") as tmp:
        layout, bundle = Path(tmp) / "oci", Path(tmp) / "bundle"
        tag = image.rsplit(":", 1)[1]
        for argv in (
            ["umoci", "init", "--layout", str(layout)],
            ["umoci", "new", "--image", f"{layout}:{tag}"],
            ["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)],
        ):
            run(argv)
        shutil.copy2(pause, bundle / "rootfs" / "pause")
        run(["umoci", "repack", "--image", f"{layout}:{tag}", str(bundle)])
        run(["umoci", "config", "--image", f"{layout}:{tag}", "--config.entrypoint", "/pause", "--config.user=65535"])
        run(["umoci", "gc", "--layout", str(layout)])
        tmp_archive = archive.with_suffix(".partial")
        run(["tar", "-C", str(layout), "-cf", str(tmp_archive), "."])
        tmp_archive.replace(archive)
    return archive
