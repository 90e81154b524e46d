"""A private Neo4j 5.26 community server, run from its Maven Central artifacts.

Without Docker, idgraph still needs a real Neo4j. The jars of the community server
(``org.neo4j.app:neo4j-server`` and ``org.neo4j:neo4j``, which holds the entry point and
``neo4j-admin``) are resolved once by Maven into a cache per version. The server is then
launched the way the official ``bin/neo4j`` script does: ``java`` with the distribution's JVM
options, the heap from ``neo4j.conf``, ``-cp lib/*`` and the main class
``org.neo4j.server.CommunityEntryPoint --home-dir=... --config-dir=...``. The initial password
is set with ``neo4j-admin dbms set-initial-password`` before the first start, so the default
``neo4j/neo4j`` account never answers.

Layout: ``<cache>/<version>/lib/*.jar`` is shared by every home; a home holds ``conf/``,
``data/``, ``logs/`` and ``run/`` (pid and a small JSON of the running server).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from identity.config import Settings
from identity.errors import LocalServerError
from identity.store.host import (
    HOST,
    JVM_OPTIONS,
    MAIN_CLASS,
    check_java,
    file_lock,
    is_neo4j,
    machine_memory,
    pid_alive,
    port_in_use,
    tail_of,
)

ADMIN_CLASS = "org.neo4j.cli.AdminTool"
# Sized automatically, the server gets what neo4j-admin recommends for this share of the
# machine's memory: the rest is for idgraph itself (resolves, loads, backfills) and the OS.
NEO4J_MEMORY_SHARE = 0.5
_RECOMMENDED = re.compile(r"^server\.memory\.(heap\.max_size|pagecache\.size)=(\S+)$", re.M)


@dataclass(frozen=True)
class ServerConfig:
    """Everything the launcher needs; built from :class:`Settings` or by tests."""

    home: Path
    cache: Path
    version: str
    bolt_port: int
    password: str
    user: str = "neo4j"
    http_port: int | None = None
    heap: str = "auto"  # a size, or auto: sized to the machine (see memory())
    pagecache: str = "auto"
    start_timeout: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerConfig:
        return cls(
            home=settings.neo4j_home,
            cache=settings.neo4j_cache,
            version=settings.neo4j_version,
            bolt_port=settings.neo4j_bolt_port,
            password=settings.neo4j_password.get_secret_value(),
            user=settings.neo4j_user,
            http_port=settings.neo4j_http_port,
            heap=settings.neo4j_heap,
            pagecache=settings.neo4j_pagecache,
            start_timeout=settings.neo4j_start_timeout,
        )


@dataclass(frozen=True)
class ServerStatus:
    """What ``idgraph neo4j status`` reports."""

    running: bool
    pid: int | None
    version: str
    uri: str
    data_dir: Path
    log_file: Path
    http_uri: str | None = None
    heap: str | None = None
    pagecache: str | None = None


class LocalServer:
    """Fetch, start, stop and inspect one private Neo4j server living in ``config.home``."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._process: subprocess.Popen[bytes] | None = None

    # -- paths -------------------------------------------------------------------------
    @property
    def lib_dir(self) -> Path:
        return self.config.cache / self.config.version / "lib"

    @property
    def conf_dir(self) -> Path:
        return self.config.home / "conf"

    @property
    def data_dir(self) -> Path:
        return self.config.home / "data"

    @property
    def logs_dir(self) -> Path:
        return self.config.home / "logs"

    @property
    def _run_dir(self) -> Path:
        return self.config.home / "run"

    @property
    def _state_file(self) -> Path:
        return self._run_dir / "server.json"

    @property
    def uri(self) -> str:
        return f"bolt://{HOST}:{self.config.bolt_port}"

    # -- jars --------------------------------------------------------------------------
    def is_fetched(self) -> bool:
        return any(self.lib_dir.glob(f"neo4j-{self.config.version}.jar"))

    def fetch(self) -> Path:
        """Resolve the server jars from Maven Central into the cache (only the first time)."""
        if self.is_fetched():
            return self.lib_dir
        version_dir = self.lib_dir.parent
        with file_lock(version_dir / ".lock"):
            if self.is_fetched():
                return self.lib_dir
            mvn = shutil.which("mvn")
            if not mvn:
                raise LocalServerError(
                    "Maven not found: install maven (apt-get install maven); it fetches "
                    "the Neo4j jars from Maven Central once"
                )
            java = check_java()
            staging = version_dir / "lib.partial"
            shutil.rmtree(staging, ignore_errors=True)
            log = version_dir / "maven.log"
            pom = resources.files("identity.store") / "neo4j-pom.xml"
            with resources.as_file(pom) as pom_path, log.open("wb") as out:
                env = {**os.environ, "JAVA_HOME": str(Path(java).resolve().parent.parent)}
                result = subprocess.run(
                    [
                        mvn, "-B", "-f", str(pom_path),
                        f"-Dneo4j.version={self.config.version}",
                        "dependency:copy-dependencies",
                        f"-DoutputDirectory={staging}",
                        "-DincludeScope=runtime",
                    ],
                    stdout=out, stderr=subprocess.STDOUT, env=env, check=False,
                )  # fmt: skip
            if result.returncode != 0:
                raise LocalServerError(self._maven_failure(log))
            staging.rename(self.lib_dir)
        return self.lib_dir

    def _maven_failure(self, log: Path) -> str:
        text = log.read_text(encoding="utf-8", errors="replace")
        errors = [line for line in text.splitlines() if line.startswith("[ERROR]")]
        first = errors[0].removeprefix("[ERROR]").strip() if errors else tail_of(log, 3)
        network = re.search(
            r"transfer|resolve|UnknownHost|Connect|timed out|Network is unreachable", text
        )
        what = (
            f"could not download Neo4j {self.config.version} from Maven Central "
            "(is it reachable from here?)"
            if network
            else f"Maven failed to fetch Neo4j {self.config.version}"
        )
        return f"{what}: {first[:400]} (full log: {log})"

    # -- configuration -----------------------------------------------------------------
    def memory(self, java: str) -> tuple[str, str]:
        """(heap, page cache): the configured sizes, where ``auto`` is what ``neo4j-admin
        server memory-recommendation`` advises for :data:`NEO4J_MEMORY_SHARE` of the
        machine's memory (on 24 GB: 4.6 GB of heap and 4 GB of page cache)."""
        heap, pagecache = self.config.heap, self.config.pagecache
        if "auto" not in (heap, pagecache):
            return heap, pagecache
        budget = int(machine_memory() * NEO4J_MEMORY_SHARE / 2**20)
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "neo4j.conf").touch()
        result = subprocess.run(
            [java, "-cp", f"{self.lib_dir}/*", ADMIN_CLASS,
             "server", "memory-recommendation", f"--memory={budget}m"],
            capture_output=True, text=True, env=self._java_env(), timeout=120, check=False,
        )  # fmt: skip
        advised = dict(_RECOMMENDED.findall(result.stdout))
        if result.returncode != 0 or len(advised) != 2:
            detail = (result.stderr or result.stdout).strip()[-300:] or "no output"
            raise LocalServerError(
                "neo4j-admin server memory-recommendation failed; set IDGRAPH_NEO4J_HEAP and "
                f"IDGRAPH_NEO4J_PAGECACHE to sizes instead of auto: {detail}"
            )
        return (
            advised["heap.max_size"] if heap == "auto" else heap,
            advised["pagecache.size"] if pagecache == "auto" else pagecache,
        )

    def write_config(self, heap: str, pagecache: str) -> Path:
        """Write ``neo4j.conf``: loopback only, auth on, the memory given, HTTP off unless
        asked."""
        c = self.config
        lines = [
            "# written by idgraph: changes are overwritten at the next `idgraph neo4j start`",
            f"server.default_listen_address={HOST}",
            f"server.default_advertised_address={HOST}",
            f"server.bolt.listen_address={HOST}:{c.bolt_port}",
            "server.bolt.enabled=true",
            "server.https.enabled=false",
            f"server.http.enabled={'true' if c.http_port else 'false'}",
            f"server.directories.data={self.data_dir}",
            f"server.directories.logs={self.logs_dir}",
            f"server.directories.run={self._run_dir}",
            f"server.directories.import={c.home / 'import'}",
            f"server.directories.plugins={c.home / 'plugins'}",
            f"server.memory.heap.initial_size={heap}",
            f"server.memory.heap.max_size={heap}",
            f"server.memory.pagecache.size={pagecache}",
            "dbms.security.auth_enabled=true",
            "dbms.usage_report.enabled=false",
            "db.tx_log.rotation.retention_policy=512M size",
            # Bolt's network threads wait 5 s for quiet, twice, at every stop: a local
            # server has nobody to wait for (a backfill stops and starts it)
            "internal.dbms.bolt.netty_server_shutdown_quiet_period=0",
        ]
        if c.http_port:
            lines.append(f"server.http.listen_address={HOST}:{c.http_port}")
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("data", "logs", "run", "import", "plugins"):
            (c.home / sub).mkdir(parents=True, exist_ok=True)
        path = self.conf_dir / "neo4j.conf"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def _java_env(self) -> dict[str, str]:
        return {**os.environ, "NEO4J_HOME": str(self.config.home), "NEO4J_CONF": str(self.conf_dir)}

    def _set_initial_password(self, java: str) -> None:
        if (self.data_dir / "dbms" / "auth.ini").exists():
            return
        result = subprocess.run(
            [java, "-cp", f"{self.lib_dir}/*", ADMIN_CLASS,
             "dbms", "set-initial-password", self.config.password],
            capture_output=True, text=True, env=self._java_env(), timeout=120, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["?"]
            raise LocalServerError(f"neo4j-admin could not set the initial password: {detail[0]}")

    # -- lifecycle ---------------------------------------------------------------------
    def _recorded(self) -> dict[str, object] | None:
        try:
            data = json.loads(self._state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _running_pid(self) -> int | None:
        recorded = self._recorded()
        pid = recorded.get("pid") if recorded else None
        if isinstance(pid, int) and pid_alive(pid) and is_neo4j(pid):
            return pid
        return None

    def status(self) -> ServerStatus:
        """Running or not, pid, version, URI and data directory of this home's server."""
        recorded = self._recorded() or {}
        pid = self._running_pid()
        port = recorded.get("bolt_port") if pid else self.config.bolt_port
        http = recorded.get("http_port") if pid else self.config.http_port
        version = recorded.get("version") if pid else self.config.version
        return ServerStatus(
            running=pid is not None,
            pid=pid,
            version=str(version),
            uri=f"bolt://{HOST}:{port}",
            data_dir=self.data_dir,
            log_file=self.logs_dir / "neo4j.log",
            http_uri=f"http://{HOST}:{http}" if http else None,
            heap=str(recorded["heap"]) if pid and "heap" in recorded else None,
            pagecache=str(recorded["pagecache"]) if pid and "pagecache" in recorded else None,
        )

    def start(self) -> ServerStatus:
        """Start the server in the background and wait until Bolt answers with our password.

        Idempotent: a server already running from this home is left as it is.
        """
        current = self.status()
        if current.running:
            return current
        java = check_java()
        self.fetch()
        for port, setting in (
            (self.config.bolt_port, "IDGRAPH_NEO4J_BOLT_PORT"),
            (self.config.http_port, "IDGRAPH_NEO4J_HTTP_PORT"),
        ):
            if port and port_in_use(port):
                raise LocalServerError(
                    f"port {port} on {HOST} is already in use: stop what listens there "
                    f"or choose another port with {setting}"
                )
        heap, pagecache = self.memory(java)
        self.write_config(heap, pagecache)
        self._set_initial_password(java)
        console = self.logs_dir / "console.log"
        command = [
            java, f"-Xms{heap}", f"-Xmx{heap}", "-XX:+ExitOnOutOfMemoryError", *JVM_OPTIONS,
            "-cp", f"{self.config.home / 'plugins'}/*:{self.lib_dir}/*",
            MAIN_CLASS, f"--home-dir={self.config.home}", f"--config-dir={self.conf_dir}",
        ]  # fmt: skip
        with console.open("ab") as out:
            self._process = subprocess.Popen(
                command,
                cwd=self.config.home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self._java_env(),
                start_new_session=True,
            )
        record = {
            "pid": self._process.pid,
            "version": self.config.version,
            "bolt_port": self.config.bolt_port,
            "http_port": self.config.http_port,
            "started_at": time.time(),
            "heap": heap,
            "pagecache": pagecache,
        }
        self._state_file.write_text(json.dumps(record), encoding="utf-8")
        try:
            self._wait_until_ready(console)
        except BaseException:
            self._terminate(kill_after=10)
            raise
        return self.status()

    def _wait_until_ready(self, console: Path) -> None:
        from neo4j import GraphDatabase
        from neo4j.exceptions import AuthError, ServiceUnavailable

        assert self._process is not None
        deadline = time.monotonic() + self.config.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise LocalServerError(
                    f"Neo4j exited during start-up (code {self._process.returncode}); "
                    f"last lines of its logs:\n{self._log_tail(console)}"
                )
            if port_in_use(self.config.bolt_port):
                auth = (self.config.user, self.config.password)
                try:
                    with GraphDatabase.driver(self.uri, auth=auth) as driver:
                        driver.verify_connectivity()
                    return
                except AuthError as e:
                    raise LocalServerError(
                        f"Neo4j at {self.uri} refused the password for user "
                        f"{self.config.user!r}: its data directory {self.data_dir} was "
                        "initialised with another one; set IDGRAPH_NEO4J_PASSWORD to it "
                        "(or remove that directory to start afresh)"
                    ) from e
                except (ServiceUnavailable, OSError):
                    pass
            time.sleep(0.25)
        raise LocalServerError(
            f"Neo4j did not answer on {self.uri} within {self.config.start_timeout:.0f}s "
            f"(IDGRAPH_NEO4J_START_TIMEOUT); last lines of its logs:\n{self._log_tail(console)}"
        )

    def _log_tail(self, console: Path) -> str:
        parts = [tail_of(self.logs_dir / "neo4j.log"), tail_of(console)]
        return "\n".join(p for p in parts if p) or "(no log output)"

    def stop(self, timeout: float = 60.0) -> bool:
        """Shut the server down cleanly (SIGTERM, as ``neo4j stop`` does). False if not running."""
        if self._running_pid() is None:
            self._state_file.unlink(missing_ok=True)
            return False
        self._terminate(kill_after=timeout)
        return True

    def _terminate(self, kill_after: float) -> None:
        # the recorded server first: another process may have restarted it since this one
        # started its own (a backfill stops and starts the server)
        pid = self._running_pid() or (self._process.pid if self._process else None)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + kill_after
        while time.monotonic() < deadline and not self._exited(pid):
            time.sleep(0.1)
        if not self._exited(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while not self._exited(pid):
                time.sleep(0.1)
        self._process = None
        self._state_file.unlink(missing_ok=True)

    def _exited(self, pid: int) -> bool:
        if self._process is not None and self._process.pid == pid:
            return self._process.poll() is not None
        return not pid_alive(pid)
