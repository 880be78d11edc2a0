"""Real Redis topologies for tests and the bench, run from the `redis-server` binary on free
loopback ports.

* `SentinelGroup`: a master, its replica and three sentinels (quorum 2). The data nodes and
  the sentinels have different passwords, as a hardened deployment would.
* `ClusterGroup`: a Redis Cluster of three masters with one replica each, made by
  `redis-cli --cluster create`, password protected.

Failure detection is tuned down (3 s) so a failover takes seconds, not the production
defaults' 15-30 s. `start_topology` starts one and cleans up after a failed start; without the
binaries it raises FileNotFoundError (the tests' fixtures skip on it, or fail on CI). It must
not know pytest nor what runs on the topology.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, TypeVar

from harness.redis import (
    DATA_PASSWORD,
    SENTINEL_PASSWORD,
    RedisProcess,
    TlsFiles,
    binary,
    make_tls_files,
    wait_until,
)
from harness.servers import free_port

SERVICE = "mymaster"
DOWN_AFTER_MS = 3000

__all__ = [
    "DATA_PASSWORD",
    "SENTINEL_PASSWORD",
    "ClusterGroup",
    "RedisProcess",
    "SentinelGroup",
    "TlsFiles",
    "Topology",
    "start_topology",
]


class Topology:
    """What tests need of any topology: a bus URL, its data nodes, cleanup."""

    kind = ""
    url = ""

    def __init__(self, *, tls: bool = False) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"chat-bff-{self.kind}-"))
        self.processes: list[RedisProcess] = []
        self.tls = make_tls_files(self.workdir) if tls else None

    def _spawn(self, *args: str, sentinel_conf: str | None = None) -> RedisProcess:
        process = RedisProcess(
            self.workdir, *args, sentinel_conf=sentinel_conf, tls=self.tls
        ).start()
        self.processes.append(process)
        return process

    def primaries(self) -> list[RedisProcess]:
        raise NotImplementedError

    def owner_of(self, key: str) -> RedisProcess:
        """The primary serving `key` (one primary holds every key; a Cluster overrides)."""
        (primary,) = self.primaries()
        return primary

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

    def __init__(self, *, tls: bool = False, sentinels: int = 3, replica: bool = True) -> None:
        super().__init__(tls=tls)
        self.size = sentinels
        self.with_replica = replica

    def start(self) -> SentinelGroup:
        auth = ["--requirepass", DATA_PASSWORD, "--masterauth", DATA_PASSWORD]
        self.master = self._spawn(*auth)
        wait_until(lambda: self.master.client().ping(), "the master")
        self.data = [self.master]
        if self.with_replica:
            self.replica = self._spawn(*auth, "--replicaof", "127.0.0.1", str(self.master.port))
            self.data.append(self.replica)
            wait_until(
                lambda: self.replica.client().info("replication")["master_link_status"] == "up",
                "the replica's link",
            )
        quorum = min(2, self.size)
        self.sentinels = []
        for _ in range(self.size):
            conf = "\n".join(
                [
                    f"requirepass {SENTINEL_PASSWORD}",
                    f"sentinel sentinel-pass {SENTINEL_PASSWORD}",
                    f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} {quorum}",
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
                    if state["num-slaves"] < len(self.data) - 1:
                        return False
                    if state["num-other-sentinels"] < self.size - 1:
                        return False
            return True

        wait_until(settled, "the sentinels to find the replica and each other")
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        scheme = "rediss+sentinel" if self.tls else "redis+sentinel"
        self.url = (
            f"{scheme}://:{DATA_PASSWORD}@{hosts}/{SERVICE}?sentinel_password={SENTINEL_PASSWORD}"
        )
        if self.tls:
            self.url += "&" + self.tls.url_options()
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
        return [p for p in self.data if p.port == port]

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
            (new,) = [p for p in self.data if p.port == port]
            with new.client() as client:
                return bool(client.info("replication")["role"] == "master")

        wait_until(promoted, "the sentinels' failover", timeout_s)
        return time.monotonic() - started


class ClusterGroup(Topology):
    kind = "cluster"

    def __init__(self, *, tls: bool = False, replicas: int = 1) -> None:
        super().__init__(tls=tls)
        self.replicas = replicas

    def start(self) -> ClusterGroup:
        tls_cluster = ["--tls-cluster", "yes"] if self.tls else []
        for _ in range(3 * (1 + self.replicas)):
            self._spawn(
                *tls_cluster,
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
            wait_until(lambda p=process: p.client().ping(), "a cluster node")
        create = [binary("redis-cli"), "-a", DATA_PASSWORD, "--no-auth-warning"]
        create += self.tls.cli_args() if self.tls else []
        create += ["--cluster", "create", *(f"127.0.0.1:{p.port}" for p in self.processes)]
        create += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout!r}")
        wait_until(self._healthy, "the cluster to settle")
        self.url = "{}://:{}@{}".format(
            "rediss+cluster" if self.tls else "redis+cluster",
            DATA_PASSWORD,
            ",".join(f"127.0.0.1:{p.port}" for p in self.processes[:3]),
        )
        if self.tls:
            self.url += "?" + self.tls.url_options()
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

    def slot_of(self, key: str) -> int:
        with next(p for p in self.processes if p.alive).client() as client:
            return int(client.execute_command("CLUSTER", "KEYSLOT", key))

    def migrate_slot(self, slot: int, source: RedisProcess, target: RedisProcess) -> None:
        """Reshard one slot with its keys, the way `redis-cli --cluster reshard` does."""
        with source.client() as src, target.client() as dst:
            src_id = src.execute_command("CLUSTER", "MYID")
            dst_id = dst.execute_command("CLUSTER", "MYID")
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                src.execute_command(
                    "MIGRATE", "127.0.0.1", target.port, "", 0, 5000,
                    "AUTH", DATA_PASSWORD, "KEYS", *keys,
                )  # fmt: skip
            # The new owner first, then the old one (which then unsubscribes the slot's shard
            # channels), then the others.
            others = [p for p in self.primaries() if p not in (source, target)]
            for node in [target, source, *others]:
                with node.client() as client:
                    client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)

    def wait_failover(self, old: RedisProcess, timeout_s: float = 30.0) -> float:
        """Seconds until a replica took over `old`'s slots and the cluster is ok again."""
        started = time.monotonic()

        def promoted() -> bool:
            return old not in self.primaries() and self._healthy()

        wait_until(promoted, "the cluster's failover", timeout_s)
        return time.monotonic() - started


T = TypeVar("T", SentinelGroup, ClusterGroup)


def start_topology(kind: type[T]) -> T:
    """A started topology of `kind`; on any failure, whatever was started is stopped."""
    group = kind()
    try:
        return group.start()
    except BaseException:
        group.stop()
        raise
