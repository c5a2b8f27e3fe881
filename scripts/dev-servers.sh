#!/usr/bin/env bash
# Starts and stops the servers aec's tests talk to, on 127.0.0.1 with data under one folder:
#   - PostgreSQL (Debian's postgresql: initdb + pg_ctl), database and user "aec", trust auth;
#   - pgbouncer in front of it (pool_mode transaction; database alias aec_session in session mode);
#   - a 3-member etcd cluster (Debian's etcd-server);
#   - dynalite, DynamoDB's API on LevelDB (npm, tests/dynalite: scripts/install-test-deps.sh),
#     when Node.js and the package are there (else skipped, unless named by --only);
#   - Redis (Debian's redis-server), a peer of the benchmarks only, in memory (no snapshots, no
#     append-only file: a benchmark turns those on itself).
# Free ports are picked at start. Everything is stopped by its PID.
#
#   scripts/dev-servers.sh up   [--dir DIR] [--only postgres|pgbouncer|etcd|dynalite|redis ...]
#                               [--faketime]
#   scripts/dev-servers.sh down [--dir DIR]
#   scripts/dev-servers.sh status [--dir DIR]
#   scripts/dev-servers.sh env  [--dir DIR]          # print the URLs (source-able)
#   scripts/dev-servers.sh restart-postgres [--dir DIR] [--mode fast|immediate]
#   scripts/dev-servers.sh stop-postgres [--dir DIR] [--mode fast|immediate]   # fault tests:
#   scripts/dev-servers.sh start-postgres [--dir DIR]                          # same port again
#
# DIR defaults to $AEC_DEV_SERVERS_DIR or /tmp/aec-dev-servers. `up` writes DIR/urls.env:
#   AEC_TEST_POSTGRES_URL=postgres://aec@127.0.0.1:PORT/aec
#   AEC_TEST_PGBOUNCER_URL=postgres://aec@127.0.0.1:PORT/aec              (transaction mode)
#   AEC_TEST_PGBOUNCER_SESSION_URL=postgres://aec@127.0.0.1:PORT/aec_session
#   AEC_TEST_ETCD_ENDPOINTS=127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
#   AEC_TEST_DYNAMODB_ENDPOINT=http://127.0.0.1:PORT
#   AEC_TEST_REDIS_ADDRESS=127.0.0.1:PORT
# and, per etcd member N (1..3), DIR/etcd-N.pid and DIR/etcd-N.cmd (the command that starts
# it again, for tests that kill and restart members). Tests find the file through
# AEC_TEST_SERVERS_ENV=DIR/urls.env. PostgreSQL and pgbouncer refuse to run as root: as root
# they run as the `postgres` user that Debian's package creates.
#
# --faketime runs PostgreSQL under libfaketime (Debian's faketime) with its wall clock offset by
# what a file says, read again at every clock call (e.g. "+30" or "-2.5": seconds; "+0" at
# first); its monotonic clock stays real. urls.env names the file:
#   AEC_TEST_POSTGRES_CLOCK_FILE=FILE
# The reliability suite's T7 steps PostgreSQL's clock that way, on servers of its own.
set -euo pipefail

usage() { sed -n '2,37p' "$0"; }
die() { echo "dev-servers.sh: $*" >&2; exit 1; }
say() { printf '==> %s\n' "$*" >&2; }

cmd=${1:-}
[ -n "$cmd" ] || { usage; exit 64; }
shift
dir=${AEC_DEV_SERVERS_DIR:-/tmp/aec-dev-servers}
only=()
mode=fast
faketime=0
while [ $# -gt 0 ]; do
  case "$1" in
    --faketime) faketime=1; shift ;;
    --dir) dir=$2; shift 2 ;;
    --only) only+=("$2"); shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
named_only=${#only[@]}
[ ${#only[@]} -gt 0 ] || only=(postgres pgbouncer etcd dynalite redis)
# PostgreSQL's and pgbouncer's files, owned by the user they run as. As root that is `postgres`,
# who may not be able to reach DIR (under /root, say): their files then live in a folder of
# their own under /tmp, named in DIR/pgdir and removed by `down`.
find_pgdir() {
  if [ -f "$dir/pgdir" ]; then
    pgdir=$(cat "$dir/pgdir")
  elif [ "$(id -u)" -eq 0 ]; then
    pgdir=$(mktemp -d "${TMPDIR:-/tmp}/aec-pg-XXXXXX")
    chmod 755 "$pgdir"
    echo "$pgdir" >"$dir/pgdir"
  else
    pgdir=$dir/pg
  fi
}
pgdir=$dir/pg
[ -f "$dir/pgdir" ] && pgdir=$(cat "$dir/pgdir")
wants() { local s; for s in "${only[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
# As root, run a command as the postgres user (initdb, postgres and pgbouncer refuse root).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

used_ports=" "
# Ports are picked below the kernel's ephemeral range, where no outgoing connection can hold one
# (an outgoing connection's local port makes a later bind fail even though nothing listens).
read -r ephemeral_low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || ephemeral_low=32768
[ "$ephemeral_low" -gt 12000 ] || ephemeral_low=32768
# Sets variable $1 to a TCP port on 127.0.0.1 that nothing listens on (and that this run has not
# handed out). Not through $(...): a subshell's note of the ports handed out would be lost, and
# two etcd members once got one port.
free_port() {
  local p tries
  for tries in $(seq 200); do
    p=$((10000 + RANDOM % (ephemeral_low - 10000)))
    case "$used_ports" in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      used_ports+="$p "
      printf -v "$1" '%s' "$p"
      return
    fi
  done
  die "no free TCP port found on 127.0.0.1"
}

# Waits until `check` succeeds, up to $2 seconds.
await() {
  local what=$1 seconds=$2 i
  shift 2
  for i in $(seq $((seconds * 20))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.05
  done
  die "$what did not come up within ${seconds}s (logs in $dir)"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Stops the process whose PID is in file $1 (SIGTERM, then SIGKILL after 10 s) and waits for it.
stop_pid() {
  local file=$1 sig=${2:-TERM} pid i
  [ -f "$file" ] || return 0
  pid=$(head -1 "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -"$sig" "$pid" 2>/dev/null || true
    for i in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

set_url() {  # set_url NAME VALUE: writes or replaces NAME=VALUE in urls.env
  touch "$dir/urls.env"
  grep -v "^$1=" "$dir/urls.env" >"$dir/urls.env.tmp" || true
  echo "$1=$2" >>"$dir/urls.env.tmp"
  mv "$dir/urls.env.tmp" "$dir/urls.env"
}
get_url() { sed -n "s/^$1=//p" "$dir/urls.env" 2>/dev/null; }

postgres_up() {
  [ -n "$pg_bin" ] || die "PostgreSQL is not installed (Debian package postgresql; scripts/setup.sh installs it)"
  local data=$pgdir/data port
  if alive "$dir/postgres.pid"; then say "postgres: already running"; return; fi
  mkdir -p "$data"
  [ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$pgdir"
  chmod 700 "$data"
  if [ ! -f "$data/PG_VERSION" ]; then
    as_pg "$pg_bin/initdb" -D "$data" -U aec --auth=trust -E UTF8 --locale=C.UTF-8 \
      >"$pgdir/initdb.log" 2>&1 || die "initdb failed: see $pgdir/initdb.log"
  fi
  # A restart keeps its port (clients and the URLs file still point there).
  if [ -f "$pgdir/port" ]; then port=$(cat "$pgdir/port"); else free_port port; fi
  # Under libfaketime (--faketime, and start-postgres after it): the clock file's offset on the
  # wall clock.
  local clock=$pgdir/faketime.txt preload=()
  if [ "$faketime" -eq 1 ] && [ ! -f "$clock" ]; then
    echo "+0" >"$clock"
    chmod 644 "$clock"
  fi
  if [ -f "$clock" ]; then
    local lib
    lib=$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 2>/dev/null | head -1 || true)
    [ -n "$lib" ] || die "--faketime needs libfaketime (Debian package faketime; scripts/setup.sh installs it)"
    preload=(env "LD_PRELOAD=$lib" "FAKETIME_TIMESTAMP_FILE=$clock" FAKETIME_NO_CACHE=1
      FAKETIME_DONT_FAKE_MONOTONIC=1)
    set_url AEC_TEST_POSTGRES_CLOCK_FILE "$clock"
  fi
  # The socket lives in the data folder (no /run/postgresql needed); 200 connections for the
  # benchmarks' 64 clients, aecd replicas and the tests beside them.
  as_pg "${preload[@]}" "$pg_bin/pg_ctl" -D "$data" -l "$pgdir/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$data \
        -c max_connections=200 -c shared_buffers=64MB" start >/dev/null \
    || die "postgres did not start: see $pgdir/postgres.log"
  head -1 "$data/postmaster.pid" >"$dir/postgres.pid"
  echo "$port" >"$pgdir/port"
  as_pg "$pg_bin/psql" -h 127.0.0.1 -p "$port" -U aec -d postgres -qtA \
    -c "SELECT 1 FROM pg_database WHERE datname = 'aec'" | grep -q 1 \
    || as_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$port" -U aec aec
  set_url AEC_TEST_POSTGRES_URL "postgres://aec@127.0.0.1:$port/aec"
  say "postgres: 127.0.0.1:$port (pid $(cat "$dir/postgres.pid"))"
}

postgres_restart() {
  local data=$pgdir/data
  alive "$dir/postgres.pid" || die "postgres is not running under $dir"
  as_pg "$pg_bin/pg_ctl" -D "$data" -m "$mode" -w -t 60 restart >/dev/null \
    || die "postgres did not restart: see $pgdir/postgres.log"
  head -1 "$data/postmaster.pid" >"$dir/postgres.pid"
  say "postgres: restarted (-m $mode), pid $(cat "$dir/postgres.pid")"
}

postgres_stop() {
  alive "$dir/postgres.pid" || die "postgres is not running under $dir"
  as_pg "$pg_bin/pg_ctl" -D "$pgdir/data" -m "$mode" -w -t 60 stop >/dev/null \
    || die "postgres did not stop: see $pgdir/postgres.log"
  rm -f "$dir/postgres.pid"
  say "postgres: stopped (-m $mode)"
}

pgbouncer_up() {
  command -v pgbouncer >/dev/null || die "pgbouncer is not installed (Debian package pgbouncer)"
  local pg port ini=$pgdir/pgbouncer.ini
  if alive "$pgdir/pgbouncer.pid"; then say "pgbouncer: already running"; return; fi
  pg=$(get_url AEC_TEST_POSTGRES_URL)
  [ -n "$pg" ] || die "pgbouncer needs postgres: run 'up --only postgres' first (or no --only)"
  pg=${pg#postgres://aec@127.0.0.1:}
  pg=${pg%%/*}
  free_port port
  cat >"$ini" <<EOF
[databases]
aec = host=127.0.0.1 port=$pg dbname=aec user=aec
aec_session = host=127.0.0.1 port=$pg dbname=aec user=aec pool_mode=session
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = any
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 40
pidfile = $pgdir/pgbouncer.pid
logfile = $pgdir/pgbouncer.log
EOF
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$ini"
  as_pg pgbouncer -d -q "$ini" || die "pgbouncer did not start: see $pgdir/pgbouncer.log"
  await "pgbouncer" 10 alive "$pgdir/pgbouncer.pid"
  set_url AEC_TEST_PGBOUNCER_URL "postgres://aec@127.0.0.1:$port/aec"
  set_url AEC_TEST_PGBOUNCER_SESSION_URL "postgres://aec@127.0.0.1:$port/aec_session"
  say "pgbouncer: 127.0.0.1:$port (pid $(cat "$pgdir/pgbouncer.pid"))"
}

etcd_up() {
  command -v etcd >/dev/null || die "etcd is not installed (Debian package etcd-server)"
  local n cluster="" endpoints="" client=() peer=()
  if alive "$dir/etcd-1.pid"; then say "etcd: already running"; return; fi
  for n in 1 2 3; do
    free_port "client[n]"
    free_port "peer[n]"
    cluster+="${cluster:+,}m$n=http://127.0.0.1:${peer[n]}"
    endpoints+="${endpoints:+,}127.0.0.1:${client[n]}"
  done
  # Heartbeat 50 ms, election timeout 500 ms: etcd's shortest lease is then 1 s (it grants at
  # least 1.5 election timeouts, rounded up to whole seconds), so the fault tests' 1 s ttl is
  # what etcd keeps; with etcd's defaults (100/1000) a 1 s lease lives 2 s. The reliability plan
  # names 10/100; on 2 shared cores a 100 ms election timeout calls elections under load.
  # --pre-vote: a member restarted by a test (or cut off) rejoins without deposing the leader
  # (without it, its raised term forces an election whenever it comes back).
  for n in 1 2 3; do
    local cmdline="etcd --name m$n --data-dir $dir/etcd-$n \
--listen-client-urls http://127.0.0.1:${client[n]} --advertise-client-urls http://127.0.0.1:${client[n]} \
--listen-peer-urls http://127.0.0.1:${peer[n]} --initial-advertise-peer-urls http://127.0.0.1:${peer[n]} \
--initial-cluster $cluster --initial-cluster-token aec-test --initial-cluster-state new \
--heartbeat-interval 50 --election-timeout 500 --pre-vote --logger zap --log-outputs $dir/etcd-$n.log"
    # Fresh data: the ports are new, and a member's old data would name peers that are gone.
    rm -rf "$dir/etcd-$n"
    echo "$cmdline" >"$dir/etcd-$n.cmd"
    # setsid: the member outlives this script and is not in the caller's process group.
    setsid $cmdline </dev/null >/dev/null 2>&1 &
    echo $! >"$dir/etcd-$n.pid"
  done
  for n in 1 2 3; do
    alive "$dir/etcd-$n.pid" || die "etcd member m$n exited at start: see $dir/etcd-$n.log"
    await "etcd member m$n" 30 etcdctl --endpoints "127.0.0.1:${client[n]}" \
      --dial-timeout 1s --command-timeout 1s endpoint health
  done
  set_url AEC_TEST_ETCD_ENDPOINTS "$endpoints"
  say "etcd: 3 members, clients at $endpoints"
}

dynalite_up() {
  local cli port
  cli=$(cd "$(dirname "$0")/.." && pwd)/tests/dynalite/node_modules/dynalite/cli.js
  if alive "$dir/dynalite.pid"; then say "dynalite: already running"; return; fi
  if ! command -v node >/dev/null || [ ! -f "$cli" ]; then
    local why="dynalite is not installed (scripts/install-test-deps.sh; it needs Node.js and npm)"
    [ "$named_only" -eq 0 ] || die "$why"
    say "$why: skipped, and so are the tests of the dynamodb:// store"
    return
  fi
  free_port port
  rm -rf "$dir/dynalite"
  mkdir -p "$dir/dynalite"
  # Tables become ACTIVE 50 ms after a create (dynalite's default, 500 ms, only slows tests).
  setsid node "$cli" --host 127.0.0.1 --port "$port" --path "$dir/dynalite" \
    --createTableMs 50 --deleteTableMs 50 --updateTableMs 50 </dev/null >"$dir/dynalite.log" 2>&1 &
  echo $! >"$dir/dynalite.pid"
  await "dynalite" 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
  set_url AEC_TEST_DYNAMODB_ENDPOINT "http://127.0.0.1:$port"
  say "dynalite: http://127.0.0.1:$port (pid $(cat "$dir/dynalite.pid"))"
}

redis_up() {
  local port
  if alive "$dir/redis.pid"; then say "redis: already running"; return; fi
  command -v redis-server >/dev/null || die "redis is not installed (Debian package redis-server; scripts/setup.sh installs it)"
  free_port port
  rm -rf "$dir/redis"
  mkdir -p "$dir/redis"
  setsid redis-server --bind 127.0.0.1 --port "$port" --dir "$dir/redis" --save "" \
    --appendonly no --daemonize no --logfile "$dir/redis.log" </dev/null >/dev/null 2>&1 &
  echo $! >"$dir/redis.pid"
  await "redis" 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
  set_url AEC_TEST_REDIS_ADDRESS "127.0.0.1:$port"
  say "redis: 127.0.0.1:$port (pid $(cat "$dir/redis.pid"))"
}

up() {
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  find_pgdir
  wants postgres && postgres_up
  wants pgbouncer && pgbouncer_up
  wants etcd && etcd_up
  wants dynalite && dynalite_up
  wants redis && redis_up
  echo "AEC_TEST_SERVERS_ENV=$dir/urls.env"
}

down() {
  [ -d "$dir" ] || return 0
  local n
  for n in 1 2 3; do stop_pid "$dir/etcd-$n.pid"; rm -rf "$dir/etcd-$n"; done
  stop_pid "$dir/dynalite.pid"
  rm -rf "$dir/dynalite"
  stop_pid "$dir/redis.pid"
  rm -rf "$dir/redis"
  stop_pid "$pgdir/pgbouncer.pid"
  # SIGINT: PostgreSQL's fast shutdown.
  stop_pid "$dir/postgres.pid" INT
  rm -f "$dir/urls.env"
  if [ -f "$dir/pgdir" ]; then
    rm -rf "$(cat "$dir/pgdir")" "$dir/pgdir"
  fi
  say "servers under $dir stopped"
}

status() {
  local f
  for f in "$dir"/postgres.pid "$pgdir"/pgbouncer.pid "$dir"/etcd-*.pid "$dir"/dynalite.pid \
    "$dir"/redis.pid; do
    [ -f "$f" ] || continue
    if alive "$f"; then echo "$(basename "$f" .pid): running (pid $(cat "$f"))"
    else echo "$(basename "$f" .pid): not running"; fi
  done
  [ -f "$dir/urls.env" ] && cat "$dir/urls.env"
  return 0
}

case "$cmd" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) [ -f "$dir/urls.env" ] || die "no servers under $dir: run '$0 up' first"; cat "$dir/urls.env" ;;
  restart-postgres) postgres_restart ;;
  stop-postgres) postgres_stop ;;
  start-postgres) dir=$(cd "$dir" && pwd); find_pgdir; postgres_up ;;
  -h|--help|help) usage ;;
  *) die "unknown command '$cmd': use up, down, status, env, restart-postgres, stop-postgres or start-postgres" ;;
esac
