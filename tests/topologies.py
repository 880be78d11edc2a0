"""Real Redis topologies for tests, run from the `redis-server` binary on free loopback ports.

* `SentinelGroup`: a master, its replica and three sentinels (quorum 2). The data nodes and
  the sentinels have different passwords, as a hardened deployment would.
* `ClusterGroup`: a Redis Cluster of three masters with one replica each, made by
  `redis-cli --cluster create`, password protected.

Failure detection is tuned down (3 s) so a failover takes seconds, not the production
defaults' 15-30 s. The session fixtures (`sentinel_group`, `redis_cluster`) are shared by
every test that leaves the topology as it found it (each test uses its own key prefix); tests
that kill a node take a fresh one (`fresh_sentinel_group`, `fresh_redis_cluster`). Without the
binaries the tests skip, and on CI (`CI=true`) they fail.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.components import missing_component
from tests.servers import free_port

DATA_PASSWORD = "topology-data-secret"
SENTINEL_PASSWORD = "topology-sentinel-secret"
SERVICE = "mymaster"
DOWN_AFTER_MS = 3000


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"{name} is not installed")
    return path


class RedisProcess:
    """One `redis-server` (or sentinel) process on a free loopback port."""

    def __init__(self, workdir: Path, *args: str, sentinel_conf: str | None = None) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.args = list(args)
        self.sentinel_conf = sentinel_conf
        self.log = workdir / f"redis-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisProcess:
        common = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir)]
        common += ["--logfile", str(self.log), "--loglevel", "notice"]
        if self.sentinel_conf is not None:
            conf = self.workdir / f"sentinel-{self.port}.conf"
            conf.write_text(self.sentinel_conf)
            argv = [_binary("redis-server"), str(conf), "--sentinel", *common]
        else:
            argv = [_binary("redis-server"), *common, "--save", "", "--appendonly", "no"]
            argv += self.args
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, password: str | None = DATA_PASSWORD, **kwargs: Any) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=password,
            socket_timeout=2,
            socket_connect_timeout=2,
            decode_responses=True,
            **kwargs,
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _wait(predicate: Any, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what} (last error: {last!r})")


class Topology:
    """What tests need of any topology: a bus URL, its data nodes, cleanup."""

    kind = ""
    url = ""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"chat-bff-{self.kind}-"))
        self.processes: list[RedisProcess] = []

    def _spawn(self, *args: str, sentinel_conf: str | None = None) -> RedisProcess:
        process = RedisProcess(self.workdir, *args, sentinel_conf=sentinel_conf).start()
        self.processes.append(process)
        return process

    def primaries(self) -> list[RedisProcess]:
        raise NotImplementedError

    def delete_prefix(self, prefix: str) -> None:
        for process in self.primaries():
            with process.client() as client:
                keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
                for key in keys:
                    client.unlink(key)

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


class SentinelGroup(Topology):
    kind = "sentinel"

    def start(self) -> SentinelGroup:
        auth = ["--requirepass", DATA_PASSWORD, "--masterauth", DATA_PASSWORD]
        self.master = self._spawn(*auth)
        _wait(lambda: self.master.client().ping(), "the master")
        self.replica = self._spawn(*auth, "--replicaof", "127.0.0.1", str(self.master.port))
        _wait(
            lambda: self.replica.client().info("replication")["master_link_status"] == "up",
            "the replica's link",
        )
        self.sentinels = []
        for _ in range(3):
            conf = "\n".join(
                [
                    f"requirepass {SENTINEL_PASSWORD}",
                    f"sentinel sentinel-pass {SENTINEL_PASSWORD}",
                    f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 2",
                    f"sentinel auth-pass {SERVICE} {DATA_PASSWORD}",
                    f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {SERVICE} 10000",
                    f"sentinel parallel-syncs {SERVICE} 1",
                    "",
                ]
            )
            self.sentinels.append(self._spawn(sentinel_conf=conf))

        def settled() -> bool:
            for sentinel in self.sentinels:
                with sentinel.client(SENTINEL_PASSWORD) as client:
                    state = client.sentinel_master(SERVICE)
                    if state["num-slaves"] < 1 or state["num-other-sentinels"] < 2:
                        return False
            return True

        _wait(settled, "the sentinels to find the replica and each other")
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        self.url = (
            f"redis+sentinel://:{DATA_PASSWORD}@{hosts}/{SERVICE}"
            f"?sentinel_password={SENTINEL_PASSWORD}"
        )
        return self

    def master_port(self) -> int:
        for sentinel in self.sentinels:
            if sentinel.alive:
                with sentinel.client(SENTINEL_PASSWORD) as client:
                    _, port = client.sentinel_get_master_addr_by_name(SERVICE)
                    return int(port)
        raise RuntimeError("no sentinel answers")

    def primaries(self) -> list[RedisProcess]:
        port = self.master_port()
        return [p for p in (self.master, self.replica) if p.port == port]

    def kill_master(self) -> RedisProcess:
        (master,) = self.primaries()
        master.kill()
        return master

    def wait_failover(self, old: RedisProcess, timeout_s: float = 30.0) -> float:
        """Seconds until the sentinels name a new, answering master."""
        started = time.monotonic()

        def promoted() -> bool:
            port = self.master_port()
            if port == old.port:
                return False
            (new,) = [p for p in (self.master, self.replica) if p.port == port]
            with new.client() as client:
                return bool(client.info("replication")["role"] == "master")

        _wait(promoted, "the sentinels' failover", timeout_s)
        return time.monotonic() - started


class ClusterGroup(Topology):
    kind = "cluster"

    def start(self) -> ClusterGroup:
        for _ in range(6):
            self._spawn(
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                str(free_port()),
                "--cluster-config-file",
                f"nodes-{len(self.processes)}.conf",
                "--cluster-node-timeout",
                str(DOWN_AFTER_MS),
                "--requirepass",
                DATA_PASSWORD,
                "--masterauth",
                DATA_PASSWORD,
            )
        for process in self.processes:
            _wait(lambda p=process: p.client().ping(), "a cluster node")
        create = [_binary("redis-cli"), "-a", DATA_PASSWORD, "--no-auth-warning", "--cluster"]
        create += ["create", *(f"127.0.0.1:{p.port}" for p in self.processes)]
        create += ["--cluster-replicas", "1", "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout!r}")
        _wait(self._healthy, "the cluster to settle")
        self.url = "redis+cluster://:{}@{}".format(
            DATA_PASSWORD, ",".join(f"127.0.0.1:{p.port}" for p in self.processes[:3])
        )
        return self

    def _nodes(self, via: RedisProcess) -> list[dict[str, Any]]:
        """CLUSTER NODES as seen by `via`."""
        with via.client() as client:
            raw = client.execute_command("CLUSTER", "NODES")
        nodes = []
        text = raw if isinstance(raw, str) else "\n".join(f"{k} {v}" for k, v in raw.items())
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 8:
                continue
            port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
            nodes.append({"port": port, "flags": parts[2].split(","), "slots": parts[8:]})
        return nodes

    def _healthy(self) -> bool:
        live = [p for p in self.processes if p.alive]
        for process in live:
            with process.client() as client:
                if "cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                    return False
                info = client.info("replication")
                if info["role"] == "slave" and info.get("master_link_status") != "up":
                    return False
        masters = [n for n in self._nodes(live[0]) if "master" in n["flags"] and n["slots"]]
        return len(masters) == 3 and all("fail" not in n["flags"] for n in masters)

    def primaries(self) -> list[RedisProcess]:
        live = next(p for p in self.processes if p.alive)
        ports = {n["port"] for n in self._nodes(live) if "master" in n["flags"] and n["slots"]}
        ports -= {p.port for p in self.processes if not p.alive}
        return [p for p in self.processes if p.port in ports]

    def owner_of(self, key: str) -> RedisProcess:
        """The primary serving `key`'s slot."""
        live = next(p for p in self.processes if p.alive)
        with live.client() as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
        for node in self._nodes(live):
            if "master" not in node["flags"]:
                continue
            for spec in node["slots"]:
                if spec.startswith("["):
                    continue
                low, _, high = spec.partition("-")
                if int(low) <= slot <= int(high or low):
                    return next(p for p in self.processes if p.port == node["port"])
        raise RuntimeError(f"no primary serves slot {slot}")

    def wait_failover(self, old: RedisProcess, timeout_s: float = 30.0) -> float:
        """Seconds until a replica took over `old`'s slots and the cluster is ok again."""
        started = time.monotonic()

        def promoted() -> bool:
            return old not in self.primaries() and self._healthy()

        _wait(promoted, "the cluster's failover", timeout_s)
        return time.monotonic() - started


def _start(kind: type[SentinelGroup] | type[ClusterGroup]) -> Any:
    group = kind()
    try:
        return group.start()
    except FileNotFoundError as exc:
        group.stop()
        missing_component(str(exc))
    except BaseException:
        group.stop()
        raise


@pytest.fixture(scope="session")
def sentinel_group() -> Iterator[SentinelGroup]:
    group: SentinelGroup = _start(SentinelGroup)
    yield group
    group.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[ClusterGroup]:
    group: ClusterGroup = _start(ClusterGroup)
    yield group
    group.stop()


@pytest.fixture
def fresh_sentinel_group() -> Iterator[SentinelGroup]:
    group: SentinelGroup = _start(SentinelGroup)
    yield group
    group.stop()


@pytest.fixture
def fresh_redis_cluster() -> Iterator[ClusterGroup]:
    group: ClusterGroup = _start(ClusterGroup)
    yield group
    group.stop()
