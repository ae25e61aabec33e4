#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests, from the distribution's
# packages: `postgres.sh start DIR` initialises a cluster in DIR, starts it on
# a free loopback port and prints its connection string; `postgres.sh stop
# DIR` stops it and deletes DIR. Installs the server package first when it is
# missing (root only; otherwise it says what to install). The server runs
# with fsync off, as tests need no durability across a power loss;
# PREFSYNC_PG_FSYNC=on keeps it on (benchmarks).
set -euo pipefail

command=${1:-}
dir=${2:-}
if [[ -z "$command" || -z "$dir" ]]; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi

bin=""
find_bin() {
  for candidate in /usr/lib/postgresql/*/bin; do
    if [[ -x "$candidate/initdb" && -x "$candidate/pg_ctl" ]]; then
      bin=$candidate
    fi
  done
}

# The server refuses to run as root: run its tools as `postgres` then.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$command" in
  start)
    find_bin
    if [[ -z "$bin" ]]; then
      if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "installing PostgreSQL from the distribution's packages…" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
        find_bin
      fi
      if [[ -z "$bin" ]]; then
        echo "PostgreSQL's server is not installed; install it (e.g. apt-get install postgresql) to run the PostgreSQL store's tests" >&2
        exit 1
      fi
    fi
    mkdir -p "$dir"
    if [[ $(id -u) -eq 0 ]]; then chown postgres "$dir"; fi
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    # A free port: let the kernel pick one, then hand it to the server.
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-h 127.0.0.1 -p $port -k $dir -c fsync=${PREFSYNC_PG_FSYNC:-off} -c max_connections=300" start >&2 \
      || { cat "$dir/server.log" >&2; exit 1; }
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    find_bin
    if [[ -n "$bin" && -d "$dir/data" ]]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
