"""Real servers and hosts that tests own: a private PostgreSQL, an MLflow tracking server,
and a Ray cluster whose nodes are separate hosts made with Linux network namespaces.

Nothing here is mocked: PostgreSQL is ``initdb`` + ``pg_ctl`` from the machine's binaries
(run as the ``postgres`` user, as they refuse root), MLflow is ``mlflow server
--serve-artifacts``, and every Ray node is ``ray start`` inside its own network namespace
(``ip netns``) joined to a bridge, a worker node also in its own mount namespace
(``unshare --mount``) with empty tmpfs over the paths it must not see. Everything made is
torn down by ``stop()`` / ``down()``, which tests call in ``finally`` blocks; addresses are a
private /24 on a bridge of this machine, so no traffic leaves it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float, what: str) -> None:
    """Return once ``host:port`` accepts connections; RuntimeError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on {host}:{port} within {timeout:.0f} s")


def postgres_bin() -> Path | None:
    """The folder of ``initdb`` / ``pg_ctl``, or None when PostgreSQL is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    """A PostgreSQL server of the test's own, on ``host`` and a free port, trust auth.

    ``url`` is what ``--storage`` takes. ``stop()`` and ``start()`` may be called again
    (a restart keeps the data); ``remove()`` stops it and deletes its files. With
    ``password``, TCP clients must give it (SCRAM), as on a shared server; the URL has it."""

    def __init__(self, host: str = "127.0.0.1", password: str | None = None) -> None:
        bindir = postgres_bin()
        if bindir is None:
            raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
        self.bin = bindir
        self.host = host
        self.port = free_port(host)
        # outside pytest's tmp_path: its parents are private to root, and postgres must reach it
        self.root = Path(tempfile.mkdtemp(prefix="nas-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.password = password
        os.chmod(self.root, 0o755)
        shutil.chown(self.root, "postgres", "postgres")
        initdb = [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres"]
        if password is None:
            initdb.append("--auth=trust")
        else:
            pwfile = self.root / "pwfile"
            pwfile.write_text(password + "\n")
            shutil.chown(pwfile, "postgres", "postgres")
            pwfile.chmod(0o600)
            initdb += ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        self._as_postgres(initdb)
        if password is not None:
            (self.root / "pwfile").unlink()
        # clients on the server's own subnets (the bridge's hosts), not only loopback
        method = "trust" if password is None else "scram-sha-256"
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all samenet {method}\n")

    @property
    def url(self) -> str:
        user = "postgres" if self.password is None else f"postgres:{self.password}"
        return f"postgresql+psycopg://{user}@{self.host}:{self.port}/postgres"

    def _as_postgres(self, argv: list[str]) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.root,
        )

    def start(self) -> None:
        options = f"-h {self.host} -p {self.port} -k {self.root}"
        self._as_postgres(
            [
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.log),
                "-w",
                "-t",
                "60",
                "start",
            ]  # fmt: skip
        )

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._as_postgres(
                [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]
            )

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class MlflowServer:
    """``mlflow server --serve-artifacts`` on ``host`` and a free port, its runs in SQLite
    and its artifacts under ``root``; clients upload artifacts over HTTP."""

    def __init__(
        self,
        root: Path,
        host: str = "127.0.0.1",
        app_name: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.host = host
        self.port = free_port(host)
        self.app_name = app_name
        self.env = env or {}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 90.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
            "--serve-artifacts", "--artifacts-destination", str(self.root / "artifacts"),
            "--host", self.host, "--port", str(self.port), "--workers", "1",
            "--allowed-hosts", f"{self.host},{self.host}:{self.port}",
        ]  # fmt: skip
        if self.app_name:
            argv += ["--app-name", self.app_name]
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 (the server owns it)
        self.proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **self.env},
        )
        wait_for_port(self.host, self.port, timeout, "mlflow server")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(15)
        self.proc = None


def auth_server(root: Path, default_permission: str = "READ") -> tuple[MlflowServer, str]:
    """``mlflow server --app-name basic-auth`` configured as deploy/ does (the admin's
    password from the environment), with ``default_permission``; (server, admin password)."""
    ini = (REPO / "deploy" / "mlflow" / "basic_auth.ini").read_text()
    ini = ini.replace("sqlite:////mlflow/", f"sqlite:///{root}/")
    ini = ini.replace("default_permission = READ", f"default_permission = {default_permission}")
    root.mkdir(parents=True, exist_ok=True)
    (root / "basic_auth.ini").write_text(ini)
    admin_password = os.urandom(12).hex()
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(root / "basic_auth.ini"),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": os.urandom(16).hex(),
    }
    server = MlflowServer(root / "server", app_name="basic-auth", env=env)
    server.start()
    return server, admin_password


def add_user(server: MlflowServer, admin_password: str, user: str) -> str:
    """A new MLflow user of ``server``; its password."""
    from mlflow.server import get_app_client

    password = os.urandom(12).hex()
    env = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": admin_password}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        get_app_client("basic-auth", tracking_uri=server.url).create_user(user, password)
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return password


def nas(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``nas ARGS`` in a subprocess with ``env`` added; stdout and stderr kept."""
    return subprocess.run(
        [sys.executable, "-m", "nas", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def namespaces_unavailable() -> str | None:
    """Why network namespaces cannot be made here (a skip reason), or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "unshare", "runuser"):
        if shutil.which(tool) is None:
            return f"{tool!r} is not installed"
    name = f"nasprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


class NamespaceCluster:
    """Hosts on one machine: a bridge at ``<subnet>.1`` (this machine, where servers listen)
    and one network namespace per Ray node (``head`` at ``.2``, workers at ``.3``...).

    Ray runs with token authentication (Ray 2.60's default for ``ray start``); ``env`` holds
    ``RAY_AUTH_MODE`` and the token for drivers. A worker node runs in its own mount
    namespace with empty tmpfs over ``hidden`` paths (the checkout, the data, the driver's
    workdir): it sees only what the cluster provides.
    """

    def __init__(self, workers: int = 1, cpus_per_node: int = 1) -> None:
        tag = os.getpid() % 100000
        self.bridge = f"nasbr{tag}"
        self.subnet = f"10.213.{tag % 250}"
        self.prefix = f"nas{tag}"
        self.nodes = ["head"] + [f"w{i}" for i in range(1, workers + 1)]
        self.cpus = cpus_per_node
        self.root = Path(tempfile.mkdtemp(prefix=f"nasr{tag}-"))
        self.ray_port = 6390
        self.token = secrets.token_hex(32)
        self._made_bridge = False
        self._made: list[str] = []
        self.started_in: dict[str, float] = {}  # node -> seconds its `ray start` took

    # -- addresses and processes -----------------------------------------------------------

    @property
    def host_ip(self) -> str:
        """This machine's address on the bridge (servers listen here)."""
        return f"{self.subnet}.1"

    def ip(self, node: str) -> str:
        return f"{self.subnet}.{2 + self.nodes.index(node)}"

    def netns(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    @property
    def ray_address(self) -> str:
        return f"{self.ip('head')}:{self.ray_port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment of a process that talks to the cluster (driver, ``ray start``)."""
        env = dict(os.environ)
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token)
        env.pop("RAY_ADDRESS", None)
        return env

    def run(self, node: str, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Run ``argv`` on ``node`` (in its network namespace) and wait for it."""
        return subprocess.run(["ip", "netns", "exec", self.netns(node), *argv], **kwargs)

    def popen(self, node: str, argv: list[str], **kwargs) -> subprocess.Popen:
        """Start ``argv`` on ``node`` without waiting."""
        return subprocess.Popen(["ip", "netns", "exec", self.netns(node), *argv], **kwargs)

    # -- up and down -----------------------------------------------------------------------

    def up(self) -> None:
        """The bridge and one namespace per node, each with loopback and a veth on the bridge."""
        _ip("link", "add", self.bridge, "type", "bridge")
        self._made_bridge = True
        _ip("addr", "add", f"{self.host_ip}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, node in enumerate(self.nodes):
            ns, veth = self.netns(node), f"{self.prefix}v{i}"
            _ip("netns", "add", ns)
            self._made.append(ns)
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", veth, "master", self.bridge, "up")
            _ip("-n", ns, "addr", "add", f"{self.ip(node)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def start_head(self) -> None:
        """``ray start --head`` on the head node (token auth on)."""
        self._ray_start("head", ["--head", "--port", str(self.ray_port)], hidden=[])

    def start_worker(self, node: str, hidden: list[Path]) -> None:
        """``ray start --address`` on ``node``, which cannot see ``hidden``."""
        self._ray_start(node, ["--address", self.ray_address], hidden=hidden)

    def _ray_start(self, node: str, args: list[str], hidden: list[Path]) -> None:
        ray = shutil.which("ray") or "ray"
        start = [
            ray, "start", *args, "--node-ip-address", self.ip(node), "--num-cpus",
            str(self.cpus), "--temp-dir", str(self.root / node), "--disable-usage-stats",
        ]  # fmt: skip
        if node == "head":
            start += ["--include-dashboard", "false"]
        mounts = "".join(f"mount -t tmpfs nas-hidden {_quote(p)} && " for p in hidden)
        script = f"{mounts}cd / && exec {' '.join(_quote(a) for a in start)}"
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
        t0 = time.monotonic()
        done = self.run(node, argv, env=self.env, capture_output=True, text=True, timeout=120)
        self.started_in[node] = time.monotonic() - t0
        if done.returncode != 0:
            raise RuntimeError(f"ray start on {node} failed: {done.stderr[-2000:]}")

    def kill_node(self, node: str) -> None:
        """SIGKILL every process of ``node`` (its raylet, workers, ...): the host is lost."""
        ns = self.netns(node)
        for _ in range(3):
            pids = _netns_pids(ns)
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)

    def down(self) -> None:
        """Kill every process in the namespaces, delete them and the bridge (idempotent)."""
        for ns in self._made:
            self.kill_node(ns.removeprefix(f"{self.prefix}-"))
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self._made.clear()
        if self._made_bridge:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
            self._made_bridge = False
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def two_node_cluster(
    *hidden: Path,
) -> Iterator[tuple[NamespaceCluster, PrivatePostgres, MlflowServer]]:
    """A head and a worker node (1 CPU each; the worker cannot see the checkout nor
    ``hidden``), a PostgreSQL server and an MLflow server on the bridge; all torn down after,
    also on failure."""
    c = NamespaceCluster(workers=1, cpus_per_node=1)
    pg = mlflow = None
    try:
        c.up()
        pg = PrivatePostgres(host=c.host_ip)
        pg.start()
        mlflow = MlflowServer(c.root / "mlflow-server", host=c.host_ip)
        mlflow.start()
        c.start_head()
        c.start_worker("w1", hidden=hidden_from_workers(*hidden))
        yield c, pg, mlflow
    finally:
        if mlflow is not None:
            mlflow.stop()
        if pg is not None:
            pg.remove()
        c.down()


def hidden_from_workers(*extra: Path) -> list[Path]:
    """What a worker node must not see: the checkout (or, when Python itself lives inside
    it, the project's packages) and ``extra`` (data, the driver's workdir)."""
    prefix = Path(sys.prefix).resolve()
    if REPO == prefix or REPO in prefix.parents:
        code = [REPO / p for p in ("nas", "workers", "search_spaces", "tests")]
    else:
        code = [REPO]
    return code + [Path(p).resolve() for p in extra]


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _netns_pids(ns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _quote(value: object) -> str:
    import shlex

    return shlex.quote(str(value))
