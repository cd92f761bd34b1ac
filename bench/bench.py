#!/usr/bin/env python3
"""kvseal benchmark driver (run through bench/run, which builds the binaries first).

Starts kvseal (release build, durable config: synchronous=full, file seal) and OpenBao 2.7.2 (raft,
one node, and -dev in memory) on loopback ports, drives them with bench/loadgen (a closed-loop
hyper client), and prints one `name: value` line per figure, then one `target_*: PASS|FAIL` line per
target. First (unless --no-postgresql), the PostgreSQL section: one throwaway PostgreSQL cluster,
kvseal and OpenBao each on a database of it, then two kvseal nodes on the same database (`pg_*`).
It only measures: the exit status is 0 whatever the figures are (non-zero only when the benchmark
itself could not run).
"""

import argparse
import http.client
import json
import os
import pwd
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KVSEAL = os.path.join(REPO, "target", "release", "kvseal")
LOADGEN = os.path.join(REPO, "bench", "loadgen", "target", "release", "kvseal-loadgen")
OKMS_ID = "2b7c4bd5-0e1c-4f4f-9a7a-4e8f4d4c2a11"
VALUE_1K = "x" * 1024  # the secret's value: 1 KiB
HOT_KEYS = 100
PG_BIN = "/usr/lib/postgresql/15/bin"
# OpenBao's connection pool opens up to 128 connections (max_parallel, its default), each kvseal
# node up to its pool size; PostgreSQL's default of 100 would turn connections away.
PG_MAX_CONNECTIONS = 300
# OpenBao keeps its pool's connections open (max_idle_connections = max_parallel), as kvseal's pool
# does. Left unset, Go's database/sql keeps 2 idle connections: under 32 connections' load nearly
# every query opened a new PostgreSQL connection (a backend process each), and reads ran 5x slower.
OPENBAO_PG_IDLE = 128
# OpenBao's tables, exactly as OpenBao 2.7.2 creates them at start (unless `skip_create_table`);
# created first, as an operator would. The DDL in OpenBao's documentation names the constraints and
# the index differently: OpenBao would then add a second index on parent_path (checked at start).
OPENBAO_PG_DDL = """
CREATE TABLE openbao_kv_store (
  parent_path TEXT COLLATE "C" NOT NULL,
  path        TEXT COLLATE "C",
  key         TEXT COLLATE "C",
  value       BYTEA,
  CONSTRAINT openbao_kv_store_pkey PRIMARY KEY (path, key)
);
CREATE INDEX openbao_kv_store_idx ON openbao_kv_store (parent_path);
CREATE TABLE openbao_ha_locks (
  ha_key      TEXT COLLATE "C" NOT NULL,
  ha_identity TEXT COLLATE "C" NOT NULL,
  ha_value    TEXT COLLATE "C",
  valid_until TIMESTAMP WITH TIME ZONE NOT NULL,
  CONSTRAINT openbao_ha_locks_pkey PRIMARY KEY (ha_key)
);
"""

FIG = {}  # name -> value (numbers), for the target checks
T0 = time.time()


def emit(name, value, note=None):
    FIG[name] = value
    if isinstance(value, float):
        text = f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    else:
        text = str(value)
    print(f"{name}: {text}" + (f"  # {note}" if note else ""), flush=True)


def info(msg):
    print(f"# [{time.time() - T0:6.1f}s] {msg}", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def hreq(port, method, path, body=None, headers=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
    c.request(method, path, body=data, headers=headers or {})
    r = c.getresponse()
    raw = r.read()
    c.close()
    try:
        return r.status, json.loads(raw) if raw else None
    except ValueError:
        return r.status, raw.decode(errors="replace")


def wait_status(port, path, want=(200,), timeout=60, interval=0.05):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            st, _ = hreq(port, "GET", path, timeout=2)
            if st in want:
                return st
            last = st
        except OSError as e:
            last = e
        time.sleep(interval)
    raise RuntimeError(f"127.0.0.1:{port}{path} never answered {want} (last: {last})")


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def cpu_busy_fraction(seconds=1.0):
    """Share of the machine's CPU in use (by anything) over `seconds`: to show background load."""

    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + v[4]
        return sum(v), idle

    a = snap()
    time.sleep(seconds)
    b = snap()
    tot = b[0] - a[0]
    return 0.0 if tot == 0 else 1.0 - (b[1] - a[1]) / tot


def proc_ticks(pid):
    """utime + stime of one process, in clock ticks (0 once it has gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def cpu_snapshot(pids, db=None):
    """(machine busy ticks, servers' ticks, children's CPU seconds, wall time, database ticks)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = sum(v) - v[3] - v[4]
    srv = sum(proc_ticks(p) for p in pids)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    dbt = db.cpu_ticks() if db else None
    return busy, srv, ru.ru_utime + ru.ru_stime, time.perf_counter(), dbt


def cpu_delta(a, b):
    """CPU use during a load in % of one core: the server, the load generator, the database (when
    there is one: PostgreSQL's processes), everything else."""
    hz = os.sysconf("SC_CLK_TCK")
    wall = b[3] - a[3]
    if wall <= 0:
        return {}
    server = (b[1] - a[1]) / hz / wall * 100
    loadgen = (b[2] - a[2]) / wall * 100
    busy = (b[0] - a[0]) / hz / wall * 100
    out = {"server": server, "loadgen": loadgen}
    if a[4] is not None:
        out["database"] = max(0.0, (b[4] - a[4]) / hz / wall * 100)
    out["other"] = max(0.0, busy - server - loadgen - out.get("database", 0.0))
    out["idle"] = max(0.0, 100 * (os.cpu_count() or 1) - busy)
    return out


# --------------------------------------------------------------------------------------------------
# load generation


class Loadgen:
    def __init__(self, threads):
        self.threads = threads
        self.errors = []
        self.db = None  # the PostgreSQL cluster while its section runs: its CPU is counted apart

    def run(self, srv, **kw):
        return self.run_split([srv], **kw)

    def run_split(self, servers, *, conns, duration=None, warmup=1.0, count=None, headers=(),
                  read=None, write=None, body=None, write_frac=None, keys=1, start=0, label=""):
        """One load generator per server, all started at once, each with its share of the
        connections and threads; `{n}` counts from `start` + 5,000,000 × the server's index.
        The result sums the counts and rates; its percentiles are the highest of the servers'."""
        n = len(servers)
        if n > 1 and count is not None:
            raise ValueError("a load split over several servers runs for a duration, not a count")
        threads = max(1, self.threads // n)
        procs = []
        before = cpu_snapshot([s.pid for s in servers], self.db)
        for i, srv in enumerate(servers):
            args = [LOADGEN, "--addr", f"127.0.0.1:{srv.port}", "--conns", str(conns // n),
                    "--threads", str(threads), "--keys", str(keys), "--start",
                    str(start + i * 5_000_000)]
            if duration is not None:
                args += ["--duration", str(duration), "--warmup", str(warmup)]
            if count is not None:
                args += ["--count", str(count)]
            for h in headers:
                args += ["--header", h]
            if read:
                args += ["--read", read]
            if write:
                args += ["--write", write]
            if body is not None:
                args += ["--body", body]
            if write_frac is not None:
                args += ["--write-frac", str(write_frac)]
            procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
        outs = [(p,) + p.communicate() for p in procs]
        cpu = cpu_delta(before, cpu_snapshot([s.pid for s in servers], self.db))
        for p, _, err in outs:
            if p.returncode != 0:
                raise RuntimeError(f"loadgen failed ({label}): {err.strip()}")
        parts = [json.loads(out) for _, out, _ in outs]
        res = parts[0] if n == 1 else merge_results(parts)
        res["cpu"] = cpu
        if res["failed"] or res["io_errors"]:
            msg = (f"{label}: {res['failed']} failed responses {res['failed_status']}, "
                   f"{res['io_errors']} I/O errors; first: {res['first_error']}")
            self.errors.append(msg)
            print(f"# ERROR {msg}", flush=True)
        return res


def merge_results(parts):
    """Several load generators' results as one: sums, and the highest of each percentile (the
    slowest node's; percentiles of the union cannot be rebuilt from the parts)."""
    res = {k: sum(p[k] for p in parts) for k in ("ok", "failed", "io_errors", "rps", "read_rps",
                                                   "write_rps")}
    for kind in ("all", "read", "write"):
        res[kind] = {k: max(p[kind][k] for p in parts) for k in parts[0][kind] if k != "n"}
        res[kind]["n"] = sum(p[kind]["n"] for p in parts)
    res["elapsed_s"] = max(p["elapsed_s"] for p in parts)
    res["failed_status"] = {}
    for p in parts:
        for st, c in p["failed_status"].items():
            res["failed_status"][st] = res["failed_status"].get(st, 0) + c
    res["first_error"] = next((p["first_error"] for p in parts if p["first_error"]), None)
    res["parts"] = parts
    return res


def cpu_note(res):
    c = res.get("cpu") or {}
    if not c:
        return None
    db = f"database {c['database']:.0f}, " if "database" in c else ""
    return (f"CPU % of one core: server {c['server']:.0f}, load generator {c['loadgen']:.0f}, "
            f"{db}other processes {c['other']:.0f}, idle {c['idle']:.0f}")


def report(prefix, res, kind="all", with_latency=True):
    lat = res[kind]
    rps = res["rps"] if kind == "all" else res[f"{kind}_rps"]
    emit(f"{prefix}_rps", rps, cpu_note(res))
    if with_latency:
        emit(f"{prefix}_p50_ms", lat["p50_ms"])
        emit(f"{prefix}_p99_ms", lat["p99_ms"])
    if res["failed"] or res["io_errors"]:
        emit(f"{prefix}_errors", res["failed"] + res["io_errors"])


# --------------------------------------------------------------------------------------------------
# servers


class Server:
    name = "?"

    def __init__(self):
        self.proc = None
        self.port = None
        self.token = None
        self.log = None

    @property
    def pid(self):
        return self.proc.pid

    def rss(self):
        return rss_mb(self.proc.pid)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def check_alive(self, what):
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited (status {self.proc.returncode}) during {what}; "
                               f"see {self.log}")


class Kvseal(Server):
    name = "kvseal"

    def __init__(self, workdir, binary=KVSEAL, name="kvseal", pg_url=None):
        super().__init__()
        self.name = name
        self.binary = binary
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.config = os.path.join(workdir, f"{name}.toml")
        self.log = os.path.join(workdir, f"{name}.log")
        if pg_url:  # PostgreSQL: durability is the database's (fsync on, synchronous_commit on)
            storage = f'type = "postgresql"\nconnection_url = "{pg_url}"'
        else:
            storage = f'path = "{self.dir}"\nsynchronous = "full"'
        with open(self.config, "w") as f:
            f.write(f"""[listener]
address = "127.0.0.1:{self.port}"
tls_disable = true

[storage]
{storage}

[seal]
type = "file"
key_file = "{self.key_file}"

[log]
level = "warn"

[[okms.domains]]
id = "{OKMS_ID}"
mount = "secret"
""")

    @property
    def key_file(self):
        return os.path.join(self.dir, "root.key")

    def start(self, want=(200, 501)):
        """Starts the server; returns (seconds from exec to the first `want` on sys/health,
        the status)."""
        t = time.perf_counter()
        logf = open(self.log, "a")
        env = dict(os.environ)
        env.pop("KVSEAL_LOG", None)
        self.proc = subprocess.Popen([self.binary, "server", "--config", self.config],
                                     stdout=logf, stderr=subprocess.STDOUT, env=env)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kvseal exited at start (status {self.proc.returncode}); "
                                   f"see {self.log}")
            try:
                st, _ = hreq(self.port, "GET", "/v1/sys/health", timeout=2)
                if st in want:
                    return time.perf_counter() - t, st
            except OSError:
                pass
            if time.perf_counter() - t > 120:
                raise RuntimeError("kvseal did not answer within 120 s")
            time.sleep(0.002)

    def init(self):
        st, body = hreq(self.port, "PUT", "/v1/sys/init", {"secret_shares": 1, "secret_threshold": 1})
        if st != 200:
            raise RuntimeError(f"kvseal init: {st} {body}")
        self.token = body["root_token"]
        wait_status(self.port, "/v1/sys/health")


class OpenBao(Server):
    def __init__(self, workdir, bao, dev, pg_url=None):
        super().__init__()
        self.bao = bao
        self.dev = dev
        self.name = "openbao_dev" if dev else "openbao_pg" if pg_url else "openbao_raft"
        self.dir = os.path.join(workdir, self.name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.cport = free_port()
        self.log = os.path.join(workdir, self.name + ".log")
        self.config = os.path.join(workdir, self.name + ".hcl")
        if pg_url:
            storage = f"""storage "postgresql" {{
  connection_url       = "{pg_url}"
  ha_enabled           = "true"
  max_idle_connections = "{OPENBAO_PG_IDLE}"
}}"""
        else:
            storage = f"""storage "raft" {{
  path    = "{os.path.join(self.dir, 'raft')}"
  node_id = "n1"
}}"""
        if not dev:
            if not pg_url:
                os.makedirs(os.path.join(self.dir, "raft"), exist_ok=True)
            with open(self.config, "w") as f:
                f.write(f"""{storage}
listener "tcp" {{
  address         = "127.0.0.1:{self.port}"
  cluster_address = "127.0.0.1:{self.cport}"
  tls_disable     = true
}}
disable_mlock = true
api_addr      = "http://127.0.0.1:{self.port}"
cluster_addr  = "https://127.0.0.1:{self.cport}"
log_level     = "warn"
""")

    def start(self):
        logf = open(self.log, "a")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
        if self.dev:
            args = [self.bao, "server", "-dev", "-dev-root-token-id=root",
                    f"-dev-listen-address=127.0.0.1:{self.port}", "-log-level=warn"]
        else:
            args = [self.bao, "server", f"-config={self.config}"]
        self.proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, env=env)
        end = time.time() + 60
        while time.time() < end:
            self.check_alive("start")
            try:
                st, _ = hreq(self.port, "GET", "/v1/sys/health", timeout=2)
                if st in (200, 501, 503):
                    break
            except OSError:
                pass
            time.sleep(0.05)
        if self.dev:
            self.token = "root"
            wait_status(self.port, "/v1/sys/health")
        else:
            st, body = hreq(self.port, "PUT", "/v1/sys/init",
                            {"secret_shares": 1, "secret_threshold": 1})
            if st != 200:
                raise RuntimeError(f"openbao init: {st} {body}")
            self.token = body["root_token"]
            st, body = hreq(self.port, "PUT", "/v1/sys/unseal", {"key": body["keys_base64"][0]})
            if st != 200:
                raise RuntimeError(f"openbao unseal: {st} {body}")
            wait_status(self.port, "/v1/sys/health", timeout=60)  # raft leader elected, active
            st, body = hreq(self.port, "POST", "/v1/sys/mounts/secret",
                            {"type": "kv", "options": {"version": "2"}},
                            headers={"X-Vault-Token": self.token})
            if st not in (200, 204):
                raise RuntimeError(f"openbao enable kv-v2: {st} {body}")
        # kv-v2 answers writes only once its upgrade has finished.
        end = time.time() + 60
        while True:
            st, body = hreq(self.port, "POST", "/v1/secret/data/bench-probe", {"data": {"a": "b"}},
                            headers={"X-Vault-Token": self.token})
            if st == 200:
                break
            if time.time() > end:
                raise RuntimeError(f"openbao kv-v2 not writable: {st} {body}")
            time.sleep(0.1)


class Postgres:
    """One throwaway PostgreSQL cluster for the run: `initdb`, then the server on 127.0.0.1 at a
    free port, its data directory, log and unix socket under the run's directory; fsync and
    synchronous_commit on (PostgreSQL's defaults, set explicitly); trust authentication (loopback
    only, nothing else listens). As root, initdb and the server run as the `postgres` user, since
    initdb refuses root; otherwise (a CI runner as a normal user) they run as the caller."""

    def __init__(self, workdir, bindir):
        self.workdir = workdir
        self.bindir = bindir
        self.base = os.path.join(workdir, "postgresql")
        self.data = os.path.join(self.base, "data")
        self.sock = os.path.join(self.base, "socket")
        self.log = os.path.join(self.base, "server.log")
        self.port = free_port()
        self.pid = None
        self.as_owner = []

    def tool(self, name):
        path = os.path.join(self.bindir, name)
        if not os.access(path, os.X_OK):
            raise RuntimeError(
                f"PostgreSQL: no {path} (the PostgreSQL 15 server binaries: `apt-get install "
                f"postgresql-15` on Debian; another directory with --pg-bin or PG_BIN; or leave "
                f"the PostgreSQL section out with --no-postgresql)")
        return path

    def run(self, args, what):
        out = subprocess.run(self.as_owner + args, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"PostgreSQL {what} failed (status {out.returncode}): "
                               f"{(out.stdout + out.stderr).strip()[-2000:]}")
        return out.stdout

    def start(self):
        initdb, pg_ctl = self.tool("initdb"), self.tool("pg_ctl")
        self.tool("psql")
        if len(self.sock) + len("/.s.PGSQL.65535") > 107:
            raise RuntimeError(f"PostgreSQL: the socket path under {self.sock} is too long for a "
                               f"unix socket; use a shorter --workdir")
        os.makedirs(self.sock)
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("PostgreSQL: running as root and there is no `postgres` user to "
                                   "run initdb and the server as (initdb refuses root)") from None
            for d in (self.base, self.sock):
                os.chown(d, pw.pw_uid, pw.pw_gid)
                os.chmod(d, 0o700)
            os.chmod(self.workdir, 0o711)  # mkdtemp made it 0700: let the postgres user through
            self.as_owner = ["runuser", "-u", "postgres", "--"]
            if subprocess.run(self.as_owner + ["test", "-w", self.base]).returncode != 0:
                raise RuntimeError(f"PostgreSQL: the postgres user cannot reach {self.base} (a "
                                   f"directory above it is closed to others); another --workdir")
        # --no-sync: initdb does not flush the files it writes (a throwaway cluster; the server
        # itself runs with fsync on, so every commit measured below is flushed).
        self.run([initdb, "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync"], "initdb")
        opts = " ".join(["-c listen_addresses=127.0.0.1", f"-c port={self.port}",
                         f"-c unix_socket_directories={shlex.quote(self.sock)}",
                         f"-c max_connections={PG_MAX_CONNECTIONS}",
                         "-c fsync=on", "-c synchronous_commit=on"])
        self.run([pg_ctl, "-D", self.data, "-l", self.log, "-o", opts, "-w", "-t", "60", "start"],
                 f"start (see {self.log})")
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            self.pid = int(f.readline())

    def stop(self):
        if self.pid is None:
            return
        self.pid = None
        try:
            self.run([self.tool("pg_ctl"), "-D", self.data, "-m", "fast", "-w", "-t", "60", "stop"],
                     "stop")
        except RuntimeError as e:
            print(f"# {e}", flush=True)

    def url(self, db):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}?sslmode=disable"

    def psql(self, sql, db="postgres"):
        """Runs `sql` (stopping at the first error) and returns its rows, unaligned."""
        out = subprocess.run([self.tool("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                              "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db],
                             input=sql, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"psql ({db}): {out.stderr.strip()}")
        return out.stdout.strip()

    def settings(self):
        names = ("server_version", "fsync", "synchronous_commit", "wal_sync_method",
                 "full_page_writes", "shared_buffers", "max_connections")
        rows = self.psql("SELECT name || '=' || current_setting(name) FROM pg_settings "
                         f"WHERE name IN ({', '.join(repr(n) for n in names)}) ORDER BY name;")
        return ", ".join(rows.split("\n"))

    def size_mb(self, db):
        return int(self.psql(f"SELECT pg_database_size('{db}');")) / 1048576

    def cpu_ticks(self):
        """CPU ticks of the cluster: the postmaster, its live children, and the exited children
        it has reaped (a connection's backend ends with its connection)."""
        if self.pid is None:
            return 0
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        except OSError:
            return 0
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.pid:
                total += int(fields[11]) + int(fields[12])
        return total


# --------------------------------------------------------------------------------------------------
# measurements


def fsync_rate(directory, seconds=3.0):
    """Raw fsync and fdatasync rates: append 4 KiB to a file in `directory` and sync it, in a loop.
    The two calls alternate in 0.25 s slices, so that a burst of background I/O hits both alike."""
    counts = {"fsync": 0, "fdatasync": 0}
    spent = {"fsync": 0.0, "fdatasync": 0.0}
    fds = {}
    for name in counts:
        path = os.path.join(directory, f"fsync-probe-{name}")
        fds[name] = (os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), path)
    buf = b"\0" * 4096
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for name, sync in (("fsync", os.fsync), ("fdatasync", os.fdatasync)):
            fd = fds[name][0]
            t = time.perf_counter()
            stop = t + 0.25
            while time.perf_counter() < stop:
                os.write(fd, buf)
                sync(fd)
                counts[name] += 1
            spent[name] += time.perf_counter() - t
    for fd, path in fds.values():
        os.close(fd)
        os.unlink(path)
    return {k: counts[k] / spent[k] for k in counts}


def vault_loads(lg, group, dur):
    """The KV v2 suite: read (32 connections), writes to distinct keys (1, 8, 32), 90/10 mix.
    Each load runs on every server of `group` (kvseal, OpenBao raft, OpenBao dev) back to back, so
    that a burst of other activity on the machine touches all of them alike."""
    body = json.dumps({"data": {"value": VALUE_1K}})

    def tok(srv):
        return [f"X-Vault-Token: {srv.token}"]

    for srv in group:  # 100 secrets of 1 KiB, read at random below
        lg.run(srv, conns=32, count=HOT_KEYS, headers=tok(srv), write="POST /v1/secret/data/hot/{n}",
               body=body, label=f"{srv.name} seed")
        srv.check_alive("seeding")
    for srv in group:
        res = lg.run(srv, conns=32, duration=dur, headers=tok(srv), keys=HOT_KEYS,
                     read="GET /v1/secret/data/hot/{k}", label=f"{srv.name} read")
        srv.check_alive("reads")
        report(f"{srv.name}_read_c32", res)
    kv = group[0]
    # The disk's raw sync rates in kvseal's data directory, measured next to the write loads (other
    # I/O on the machine moves them a lot); the servers are up but idle meanwhile.
    rates = fsync_rate(kv.dir)
    emit("fsync_per_s", rates["fsync"])
    emit("fdatasync_per_s", rates["fdatasync"])
    for c in (1, 8, 32):
        for srv in group:
            res = lg.run(srv, conns=c, duration=dur, headers=tok(srv),
                         write="POST /v1/secret/data/w/{n}", body=body, start=c * 10_000_000,
                         label=f"{srv.name} write c{c}")
            srv.check_alive("writes")
            report(f"{srv.name}_write_c{c}", res)
    for srv in group:
        res = lg.run(srv, conns=32, duration=dur, headers=tok(srv), keys=HOT_KEYS,
                     read="GET /v1/secret/data/hot/{k}", write="POST /v1/secret/data/hot/{k}",
                     body=body, write_frac=0.1, label=f"{srv.name} mix")
        srv.check_alive("mix")
        report(f"{srv.name}_mix90_10_c32", res)
        emit(f"{srv.name}_mix90_10_c32_read_p99_ms", res["read"]["p99_ms"])
        emit(f"{srv.name}_mix90_10_c32_write_p99_ms", res["write"]["p99_ms"])
    for srv in group:
        emit(f"{srv.name}_rss_after_suite_mb", srv.rss())


def ratio(a, b):
    return a / b if b else float("inf")


def log_tail(path, lines=8):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(line.strip() for line in f.readlines()[-lines:]
                              if line.strip() not in ("", "|"))
    except OSError as e:
        return f"(no log: {e})"


def pg_report(load, who, res):
    """`pg_{load}_rps_{who}` and its p50 and p99; for a load over two nodes, each node's rate."""
    note = cpu_note(res)
    if "parts" in res:
        note += "; " + ", ".join(f"node {i + 1} {p['rps']:.0f}/s"
                                 for i, p in enumerate(res["parts"]))
    emit(f"pg_{load}_rps_{who}", res["rps"], note)
    emit(f"pg_{load}_p50_ms_{who}", res["all"]["p50_ms"])
    emit(f"pg_{load}_p99_ms_{who}", res["all"]["p99_ms"])
    if res["failed"] or res["io_errors"]:
        emit(f"pg_{load}_errors_{who}", res["failed"] + res["io_errors"])


def pg_section(args, workdir, lg, servers, pg):
    """kvseal and OpenBao on one PostgreSQL server (separate databases), one node each, load by
    load back to back; then kvseal with two nodes on the same database. Loads: reads (32
    connections, 100 secrets of 1 KiB), durable writes of new keys (8 and 32 connections)."""
    dur = args.duration
    body = json.dumps({"data": {"value": VALUE_1K}})
    pg.start()
    info(f"PostgreSQL 127.0.0.1:{pg.port} pid {pg.pid}: {pg.settings()}")
    lg.db = pg
    pg.psql("CREATE DATABASE kvseal;")
    kv = Kvseal(workdir, name="kvseal_pg", pg_url=pg.url("kvseal"))
    servers.append(kv)
    try:
        kv.start()
    except RuntimeError as e:
        raise RuntimeError(
            f'kvseal did not start with [storage] type = "postgresql" ({e}); its log: '
            f"{log_tail(kv.log)} -- does this kvseal have the PostgreSQL storage? "
            f"(--no-postgresql leaves this section out)") from None
    kv.init()
    info(f"kvseal_pg (node 1) {kv.port} pid {kv.pid}")
    who = {kv: "kvseal"}
    ob = None
    if not args.skip_openbao:
        pg.psql("CREATE DATABASE openbao;")
        pg.psql(OPENBAO_PG_DDL, db="openbao")
        ob = OpenBao(workdir, args.bao, False, pg_url=pg.url("openbao"))
        servers.append(ob)
        ob.start()
        info(f"openbao_pg {ob.port} pid {ob.pid}")
        indexes = pg.psql("SELECT string_agg(indexname, ' ' ORDER BY indexname) FROM pg_indexes "
                          "WHERE tablename = 'openbao_kv_store';", db="openbao")
        if indexes != "openbao_kv_store_idx openbao_kv_store_pkey":
            raise RuntimeError(f"openbao_kv_store has the indexes {indexes!r}: this OpenBao lays "
                               f"out its tables otherwise than OPENBAO_PG_DDL (bench/bench.py)")
        who[ob] = "openbao"
    group = list(who)

    def tok(srv):
        return [f"X-Vault-Token: {srv.token}"]

    for srv in group:
        lg.run(srv, conns=32, count=HOT_KEYS, headers=tok(srv),
               write="POST /v1/secret/data/hot/{n}", body=body, label=f"{srv.name} seed")
        srv.check_alive("seeding")
    for srv in group:
        res = lg.run(srv, conns=32, duration=dur, headers=tok(srv), keys=HOT_KEYS,
                     read="GET /v1/secret/data/hot/{k}", label=f"{srv.name} read")
        srv.check_alive("reads")
        pg_report("read", who[srv], res)
    rates = fsync_rate(pg.base)  # the disk under PostgreSQL's data, next to the write loads
    emit("pg_fsync_per_s", rates["fsync"])
    emit("pg_fdatasync_per_s", rates["fdatasync"])
    acked = {srv: 0 for srv in group}
    for c in (8, 32):
        for srv in group:
            res = lg.run(srv, conns=c, duration=dur, headers=tok(srv),
                         write="POST /v1/secret/data/w/{n}", body=body, start=c * 10_000_000,
                         label=f"{srv.name} write c{c}")
            srv.check_alive("writes")
            pg_report(f"write_c{c}", who[srv], res)
            acked[srv] += res["ok"]
    for srv in group:
        emit(f"pg_rss_mb_{who[srv]}", srv.rss())
        emit(f"pg_db_size_mb_{who[srv]}", pg.size_mb("openbao" if srv is ob else "kvseal"))
    if ob:
        # Every acknowledged write is a row at least (kv-v2 keeps a key's metadata and each version
        # apart): proof that OpenBao stored them in PostgreSQL, not elsewhere.
        rows = int(pg.psql("SELECT count(*) FROM openbao_kv_store;", db="openbao"))
        if rows < acked[ob]:
            raise RuntimeError(f"OpenBao acknowledged {acked[ob]} writes but openbao_kv_store has "
                               f"{rows} rows")
        emit("pg_rows_openbao", rows, f"{acked[ob]} writes acknowledged in the measured seconds")
        ob.stop()
        servers.remove(ob)
        for load in ("read", "write_c8", "write_c32"):
            emit(f"pg_{load}_ratio", ratio(FIG[f"pg_{load}_rps_kvseal"],
                                           FIG[f"pg_{load}_rps_openbao"]))
            emit(f"pg_{load}_p99_ratio", ratio(FIG[f"pg_{load}_p99_ms_kvseal"],
                                               FIG[f"pg_{load}_p99_ms_openbao"]))

    # ---- kvseal, two nodes on the same database: node 2 has a copy of node 1's key file ----------
    kv2 = Kvseal(workdir, name="kvseal_pg2", pg_url=pg.url("kvseal"))
    shutil.copy2(kv.key_file, kv2.key_file)
    servers.append(kv2)
    ready, _ = kv2.start(want=(200,))
    emit("pg_node2_ready_s", ready, "exec to its first 200 on sys/health, node 1 initialised")
    kv2.token = kv.token
    st, got = hreq(kv2.port, "GET", "/v1/secret/data/hot/0", headers={"X-Vault-Token": kv2.token})
    if st != 200 or got["data"]["data"] != {"value": VALUE_1K}:
        raise RuntimeError(f"node 2 does not serve node 1's secret hot/0: {st}")
    info(f"kvseal_pg2 (node 2) {kv2.port} pid {kv2.pid}")
    pair = [kv, kv2]
    res = lg.run_split(pair, conns=32, duration=dur, headers=tok(kv), keys=HOT_KEYS,
                       read="GET /v1/secret/data/hot/{k}", label="kvseal two nodes read")
    pg_report("read", "kvseal_two_nodes", res)
    for c in (8, 32):
        res = lg.run_split(pair, conns=c, duration=dur, headers=tok(kv),
                           write="POST /v1/secret/data/w/{n}", body=body,
                           start=100_000_000 + c * 10_000_000, label=f"kvseal two nodes write c{c}")
        pg_report(f"write_c{c}", "kvseal_two_nodes", res)
    for srv in pair:
        srv.check_alive("the two-node loads")
    for load in ("read", "write_c8", "write_c32"):
        emit(f"pg_{load}_two_nodes_over_one", ratio(FIG[f"pg_{load}_rps_kvseal_two_nodes"],
                                                    FIG[f"pg_{load}_rps_kvseal"]))
    for srv in pair:
        srv.stop()
        servers.remove(srv)
    lg.db = None
    pg.stop()


def sqlite_suite(args, workdir, lg, servers):
    """kvseal on SQLite: its ceilings, the KV v2 suite with OpenBao (raft, dev), OKMS, scale."""
    dur = args.duration
    kv = Kvseal(workdir)
    servers.append(kv)

    # ---- ceilings (the fsync rate is measured right before kvseal's write loads) ------------
    kv.start()
    kv.init()
    info(f"kvseal {kv.port} pid {kv.pid}")
    res = lg.run(kv, conns=32, duration=dur, read="GET /v1/sys/health", label="health")
    report("health_c32", res)
    health = res["rps"]

    # ---- KV v2 suite: kvseal, OpenBao raft, OpenBao dev, load by load ---------------------
    group = [kv]
    if not args.skip_openbao:
        for dev in (False, True):
            ob = OpenBao(workdir, args.bao, dev)
            servers.append(ob)
            ob.start()
            info(f"{ob.name} {ob.port} pid {ob.pid}")
            group.append(ob)
    if args.baseline:
        bl = Kvseal(workdir, binary=args.baseline, name="kvseal_baseline")
        servers.append(bl)
        bl.start()
        bl.init()
        info(f"kvseal_baseline ({args.baseline}) {bl.port} pid {bl.pid}")
        group.insert(1, bl)
    vault_loads(lg, group, dur)
    for ob in group[1:]:
        ob.stop()
        servers.remove(ob)
    if args.baseline:
        for load in ("read_c32", "write_c1", "write_c8", "write_c32", "mix90_10_c32"):
            emit(f"ratio_{load}_rps_kvseal_over_kvseal_baseline",
                 ratio(FIG[f"kvseal_{load}_rps"], FIG[f"kvseal_baseline_{load}_rps"]))
            emit(f"ratio_{load}_p99_kvseal_over_kvseal_baseline",
                 ratio(FIG[f"kvseal_{load}_p99_ms"], FIG[f"kvseal_baseline_{load}_p99_ms"]))
    if not args.skip_openbao:
        for peer in ("openbao_raft", "openbao_dev"):
            for load in ("read_c32", "write_c1", "write_c8", "write_c32", "mix90_10_c32"):
                emit(f"ratio_{load}_rps_kvseal_over_{peer}",
                     ratio(FIG[f"kvseal_{load}_rps"], FIG[f"{peer}_{load}_rps"]))
                emit(f"ratio_{load}_p99_kvseal_over_{peer}",
                     ratio(FIG[f"kvseal_{load}_p99_ms"], FIG[f"{peer}_{load}_p99_ms"]))
            emit(f"ratio_rss_kvseal_over_{peer}",
                 ratio(FIG["kvseal_rss_after_suite_mb"], FIG[f"{peer}_rss_after_suite_mb"]))
    sync_ceiling = max(FIG["fsync_per_s"], FIG["fdatasync_per_s"])
    emit("kvseal_read_vs_health", ratio(FIG["kvseal_read_c32_rps"], health))
    for c in (1, 8, 32):
        emit(f"kvseal_write_c{c}_per_fsync", ratio(FIG[f"kvseal_write_c{c}_rps"], sync_ceiling))

    # ---- kvseal: OKMS v2 ------------------------------------------------------------------
    bearer = [f"Authorization: Bearer {kv.token}"]
    okms_body = json.dumps({"version": {"data": {"value": VALUE_1K}}})
    tok = [f"X-Vault-Token: {kv.token}"]
    # The same 100 secrets through the Vault API again, right before: the pair gives the ratio.
    res = lg.run(kv, conns=32, duration=dur, headers=tok, keys=HOT_KEYS,
                 read="GET /v1/secret/data/hot/{k}", label="vault read (paired with OKMS)")
    report("kvseal_read_c32_before_okms", res)
    res = lg.run(kv, conns=32, duration=dur, headers=bearer, keys=HOT_KEYS,
                 read=f"GET /api/{OKMS_ID}/v2/secret/hot%2F{{k}}?includeData=true",
                 label="okms read")
    report("kvseal_okms_read_c32", res)
    res = lg.run(kv, conns=32, duration=dur, headers=bearer, keys=HOT_KEYS,
                 read=f"GET /api/{OKMS_ID}/v2/secret/hot%2F{{k}}?includeData=true",
                 write=f"PUT /api/{OKMS_ID}/v2/secret/hot%2F{{k}}", body=okms_body,
                 write_frac=0.1, label="okms mix")
    report("kvseal_okms_mix90_10_c32", res)
    emit("kvseal_okms_read_vs_vault_read",
         ratio(FIG["kvseal_okms_read_c32_rps"], FIG["kvseal_read_c32_before_okms_rps"]))
    kv.check_alive("OKMS loads")

    # ---- kvseal: 100,000 secrets ----------------------------------------------------------
    body = json.dumps({"data": {"value": VALUE_1K}})
    t = time.perf_counter()
    res = lg.run(kv, conns=64, count=100_000, headers=tok,
                 write="POST /v1/secret/data/s/{n}", body=body, start=0, label="load 100k")
    kv.check_alive("loading 100k")
    emit("kvseal_load_100k_1KiB_s", time.perf_counter() - t,
         f"{res['rps']:.0f} writes/s over 64 connections")
    # 100 secrets, then 100,000, back to back: the pair gives the ratio.
    res = lg.run(kv, conns=32, duration=dur, headers=tok, keys=HOT_KEYS,
                 read="GET /v1/secret/data/hot/{k}", label="read 100 (paired with 100k)")
    report("kvseal_read_100_before_100k", res)
    res = lg.run(kv, conns=32, duration=dur, headers=tok, keys=100_000,
                 read="GET /v1/secret/data/s/{k}", label="read 100k")
    report("kvseal_read_100k_c32", res)
    emit("kvseal_read_100k_vs_100", ratio(res["rps"], FIG["kvseal_read_100_before_100k_rps"]))
    emit("kvseal_rss_100k_mb", kv.rss())
    res = lg.run(kv, conns=1, duration=2, headers=tok, keys=100_000,
                 read="GET /v1/secret/metadata/s/?list=true&limit=100&after={k}", label="list 100k")
    report("kvseal_list100_at_100k", res)

    # ---- kvseal: 1,000,000 secrets (skipped with --no-scale) ------------------------------
    if args.scale:
        small = json.dumps({"data": {"v": "s"}})
        t = time.perf_counter()
        res = lg.run(kv, conns=64, count=900_000, headers=tok,
                     write="POST /v1/secret/data/s/{n}", body=small, start=100_000,
                     label="load to 1M")
        kv.check_alive("loading 1M")
        emit("kvseal_load_900k_small_s", time.perf_counter() - t,
             f"{res['rps']:.0f} writes/s over 64 connections")
        emit("kvseal_rss_1m_mb", kv.rss())
        res = lg.run(kv, conns=1, duration=3, headers=tok, keys=1_000_000,
                     read="GET /v1/secret/metadata/s/?list=true&limit=100&after={k}",
                     label="list 1M")
        report("kvseal_list100_at_1m", res)
        res = lg.run(kv, conns=32, duration=dur, headers=tok, keys=1_000_000,
                     read="GET /v1/secret/data/s/{k}", label="read 1M")
        report("kvseal_read_1m_c32", res)
        db = os.path.join(kv.dir, "kvseal.db")
        size = sum(os.path.getsize(db + s) for s in ("", "-wal") if os.path.exists(db + s))
        emit("kvseal_db_size_1m_mb", size / 1048576)
        kv.stop()
        startup, st = kv.start()
        if st != 200:
            raise RuntimeError(f"kvseal restarted at 1M answers {st} on sys/health, not 200")
        emit("kvseal_startup_1m_s", startup, "exec to the first 200 on sys/health; page cache warm")
        emit("kvseal_rss_after_restart_1m_mb", kv.rss())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", action="store_true", default=True,
                    help="load 1,000,000 secrets for the RSS, list-page and start-up figures (default)")
    ap.add_argument("--no-scale", dest="scale", action="store_false",
                    help="stop at 100,000 secrets (saves about 2 minutes)")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per load (after 1 s warm-up)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("LOADGEN_THREADS", "2")),
                    help="load generator threads")
    ap.add_argument("--workdir", default=None,
                    help="where the data directories go (default: target/bench-data; on disk)")
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                    help="first wait up to S seconds for the machine to be idle (under 20%% busy)")
    ap.add_argument("--bao", default=None)
    ap.add_argument("--skip-openbao", action="store_true")
    ap.add_argument("--baseline", default=None, metavar="BIN",
                    help="another kvseal binary (an earlier commit's release build) run through the "
                         "KV v2 suite load by load with this one: ratio_*_kvseal_over_kvseal_baseline")
    ap.add_argument("--postgresql", action="store_true", default=True,
                    help="run the PostgreSQL section first: kvseal and OpenBao on one throwaway "
                         "PostgreSQL cluster, and kvseal with two nodes (default)")
    ap.add_argument("--no-postgresql", dest="postgresql", action="store_false",
                    help="leave the PostgreSQL section out")
    ap.add_argument("--postgresql-only", action="store_true",
                    help="run only the PostgreSQL section")
    ap.add_argument("--pg-bin", default=os.environ.get("PG_BIN", PG_BIN), metavar="DIR",
                    help=f"PostgreSQL server binaries (initdb, pg_ctl, psql; default {PG_BIN})")
    args = ap.parse_args()
    if args.postgresql_only and not args.postgresql:
        ap.error("--postgresql-only and --no-postgresql leave nothing to run")
    dur = args.duration

    base = args.workdir or os.path.join(REPO, "target", "bench-data")
    os.makedirs(base, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="run-", dir=base)
    lg = Loadgen(args.threads)
    servers = []
    pg = Postgres(workdir, args.pg_bin) if args.postgresql else None
    if args.wait_quiet > 0:
        end = time.time() + args.wait_quiet
        while True:
            busy = cpu_busy_fraction(2.0)
            if busy < 0.2 or time.time() > end:
                info(f"machine {100 * busy:.0f}% busy; starting")
                break
    try:
        fs = subprocess.run(["df", "-T", workdir], capture_output=True, text=True).stdout.split("\n")[1]
        info(f"data in {workdir} ({' '.join(fs.split()[:2])}); {os.cpu_count()} cores; "
             f"load generator: bench/loadgen, {args.threads} threads; {dur:g} s per load after 1 s warm-up")
        info(f"loadavg before: {open('/proc/loadavg').read().strip()}; "
             f"CPU busy before start: {100 * cpu_busy_fraction():.0f}%")

        if args.postgresql:
            pg_section(args, workdir, lg, servers, pg)
        if not args.postgresql_only:
            sqlite_suite(args, workdir, lg, servers)
        info(f"loadavg after: {open('/proc/loadavg').read().strip()}")
    finally:
        for s in servers:
            s.stop()
        if pg:
            pg.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            info(f"kept {workdir}")

    # ---- targets ------------------------------------------------------------------------------
    print("# targets (one run; the benchmark measures, it does not fail the build)")
    checks = []

    def target(name, value, op, limit, unit="", what=""):
        if value is None:
            checks.append((name, "SKIP", "not measured in this run"))
            return
        ok = value >= limit if op == ">=" else value <= limit
        checks.append((name, "PASS" if ok else "FAIL",
                       f"{what}{value:.3g}{unit} {op} {limit:g}{unit}"))

    g = FIG.get
    if not args.postgresql_only:
        if "openbao_raft_read_c32_rps" in FIG:
            for peer in ("openbao_raft", "openbao_dev"):
                target(f"read_vs_{peer}", g(f"ratio_read_c32_rps_kvseal_over_{peer}"), ">=", 2, "x")
            for c in (1, 8, 32):
                target(f"write_c{c}_vs_openbao_raft",
                       g(f"ratio_write_c{c}_rps_kvseal_over_openbao_raft"), ">=", 20, "x")
            for peer in ("openbao_raft", "openbao_dev"):
                for load in ("read_c32", "write_c1", "write_c8", "write_c32", "mix90_10_c32"):
                    target(f"p99_{load}_below_{peer}", g(f"ratio_{load}_p99_kvseal_over_{peer}"),
                           "<=", 1, "x")
                target(f"rss_below_{peer}", g(f"ratio_rss_kvseal_over_{peer}"), "<=", 1, "x")
        target("read_vs_health_ceiling", g("kvseal_read_vs_health"), ">=", 0.7, "x")
        target("read_p99_c32", g("kvseal_read_c32_p99_ms"), "<=", 5, " ms")
        target("write_c32_per_fsync", g("kvseal_write_c32_per_fsync"), ">=", 5, "x")
        target("read_100k_vs_100", g("kvseal_read_100k_vs_100"), ">=", 0.9, "x")
        target("rss_100k", g("kvseal_rss_100k_mb"), "<=", 100, " MB")
        target("rss_1m", g("kvseal_rss_1m_mb"), "<=", 300, " MB")
        target("startup_1m", g("kvseal_startup_1m_s"), "<=", 1, " s")
        target("list_page_1m_p99", g("kvseal_list100_at_1m_p99_ms"), "<=", 5, " ms")
        okms = g("kvseal_okms_read_vs_vault_read")
        target("okms_read_within_10pct", okms, ">=", 0.9, "x")
    if args.postgresql:  # kvseal and OpenBao on the same PostgreSQL server, one node each
        target("pg_read_ratio_ge_1_5", g("pg_read_ratio"), ">=", 1.5, "x")
        writes = [g("pg_write_c8_ratio"), g("pg_write_c32_ratio")]
        target("pg_write_ratio_ge_2", None if None in writes else min(writes), ">=", 2, "x",
               "the lower of 8 and 32 conns: ")
    for name, verdict, detail in checks:
        print(f"target_{name}: {verdict}  ({detail})")
    npass = sum(1 for c in checks if c[1] == "PASS")
    nfail = sum(1 for c in checks if c[1] == "FAIL")
    print(f"targets: {npass} passed, {nfail} missed, {len(checks) - npass - nfail} not measured")
    if lg.errors:
        print(f"request_errors: {len(lg.errors)} loads saw failed requests (see '# ERROR' lines)")
    else:
        print("request_errors: 0")
    info("done")


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, OSError) as e:
        print(f"bench: error: {e}", file=sys.stderr)
        sys.exit(1)
