"""Runs a real PostgreSQL server (the newest /usr/lib/postgresql/*/bin) in a
temporary directory for the integration tests: initdb on first start, listens
only on 127.0.0.1 (a free port, kept across restarts) and on a Unix socket in
<tmp>/sock, logs to <tmp>/pg.log. Postgres refuses to run as root, so as root
the server runs as the 'postgres' system user. Stopped and removed at exit."""
import atexit
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

import psycopg2


def _bindir():
    """The newest /usr/lib/postgresql/<version>/bin holding pg_ctl."""
    dirs = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
            if os.path.exists(os.path.join(d, "pg_ctl"))]
    if not dirs:
        raise RuntimeError("no PostgreSQL server in /usr/lib/postgresql/*/bin")
    ver = lambda d: [int(x) for x in re.findall(r"\d+", d.split("/")[-2])]  # noqa: E731
    return max(dirs, key=ver)


def _alive(pid):
    """Whether process pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _children(pid):
    """The pids whose parent is pid."""
    out = []
    for p in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(p) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p.split("/")[2]))
        except (OSError, IndexError, ValueError):
            pass
    return out


class PgServer:
    def __init__(self):
        """Makes the temp dir (under $TRB_TEST_TMP or /tmp) and picks the port;
        does not start anything. cleanup() is registered with atexit."""
        base = os.environ.get("TRB_TEST_TMP", "/tmp")
        os.makedirs(base, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="pg-", dir=base)
        self.bin = _bindir()
        self.data = os.path.join(self.tmp, "data")
        self.sock = os.path.join(self.tmp, "sock")
        self.log_path = os.path.join(self.tmp, "pg.log")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._conn = None
        self._as_user = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
            d = os.path.dirname(os.path.abspath(self.tmp))
            while True:  # the postgres user must be able to reach self.tmp
                m = os.stat(d).st_mode
                if not m & stat.S_IXOTH:
                    os.chmod(d, stat.S_IMODE(m) | stat.S_IXOTH)
                if d == "/":
                    break
                d = os.path.dirname(d)
        os.mkdir(self.sock)
        if self._as_user:
            os.chown(self.sock, pw.pw_uid, pw.pw_gid)
        atexit.register(self.cleanup)

    def _run(self, prog, *args, check=True):
        """Runs a server binary (as 'postgres' when we are root); returns it."""
        cmd = self._as_user + [os.path.join(self.bin, prog)] + list(args)
        r = subprocess.run(cmd, cwd=self.tmp, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if check and r.returncode != 0:
            raise RuntimeError("%s failed (rc %d): %s\n%s" % (
                prog, r.returncode, r.stdout.decode(errors="replace"), self.log_tail()))
        return r

    def log_tail(self, n=40):
        """The last n lines of pg.log ('' if there is none)."""
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def pid(self):
        """The postmaster's pid from postmaster.pid, or None."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def running(self):
        """Whether the postmaster is alive."""
        pid = self.pid()
        return pid is not None and _alive(pid)

    def start(self):
        """initdb (the first time), then starts the server and waits (up to
        30 s) until it accepts TCP connections; raises with the log's tail if
        it does not. Returns self."""
        if not os.path.exists(os.path.join(self.data, "PG_VERSION")):
            self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                      "--no-sync", "-E", "UTF8", "--locale=C")
            with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
                f.write("\n# pgserver.py\nlisten_addresses = '127.0.0.1'\nport = %d\n"
                        "unix_socket_directories = '%s'\nmax_connections = 50\n"
                        "fsync = on\nsynchronous_commit = on\n"
                        % (self.port, self.sock.replace("'", "''")))
        self._run("pg_ctl", "start", "-D", self.data, "-l", self.log_path, "-w", "-t", "30")
        deadline = time.time() + 30
        while True:
            try:
                self.connect().close()
                return self
            except psycopg2.OperationalError as e:
                if time.time() > deadline or not self.running():
                    raise RuntimeError("postgres did not start: %s\n%s" % (e, self.log_tail()))
                time.sleep(0.1)

    def stop(self, mode="fast"):
        """pg_ctl stop -m mode (smart, fast or immediate) and wait; does
        nothing when the server is not running."""
        self._drop_conn()
        if self.running():
            self._run("pg_ctl", "stop", "-D", self.data, "-m", mode, "-w", "-t", "60")

    def kill(self):
        """SIGKILL the postmaster and its child processes (a crash of the
        whole server) and wait until they are all gone."""
        self._drop_conn()
        pid = self.pid()
        if pid is None or not _alive(pid):
            return
        procs = [pid] + _children(pid)
        for p in procs:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.time() + 30
        while any(_alive(p) for p in procs):
            if time.time() > deadline:
                raise RuntimeError("postgres processes survived SIGKILL: %s" % procs)
            time.sleep(0.05)
        # Until its parent reaps it (a container's init may take a while), the
        # dead postmaster is a zombie that would make the next one believe it
        # still runs: remove its lock files now that it is surely dead.
        for f in (os.path.join(self.data, "postmaster.pid"),
                  os.path.join(self.sock, ".s.PGSQL.%d.lock" % self.port)):
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass

    def restart(self, mode="fast"):
        """stop(mode) then start(). Returns self."""
        self.stop(mode)
        return self.start()

    @property
    def conninfo(self):
        """A libpq conninfo string for the server over TCP."""
        return ("host=127.0.0.1 port=%d dbname=postgres user=postgres connect_timeout=5"
                % self.port)

    def connect(self):
        """A new psycopg2 connection with autocommit on."""
        conn = psycopg2.connect(self.conninfo)
        conn.autocommit = True
        return conn

    def query(self, sql, params=None):
        """Runs sql (with psycopg2 params) on a cached autocommit connection
        and returns fetchall(), or [] for a statement without results. If the
        cached connection turns out broken (e.g. the server was restarted), it
        reconnects and runs the statement once more."""
        for attempt in (0, 1):
            if self._conn is None or self._conn.closed:
                self._conn = self.connect()
            try:
                with self._conn.cursor() as cur:
                    cur.execute(sql, params)
                    return cur.fetchall() if cur.description is not None else []
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                if attempt or not self._conn.closed:
                    raise
                self._conn = None

    def _drop_conn(self):
        """Closes the cached query() connection, if any."""
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    def cleanup(self):
        """Stops the server (killing it if a clean stop fails) and removes the
        temp dir. Safe to call more than once."""
        try:
            self.stop()
        except Exception:
            self.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)
