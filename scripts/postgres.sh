#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests, from the distribution's
# packages: `postgres.sh start DIR` initialises a cluster in DIR, starts it on
# a free loopback port and prints its connection string; `postgres.sh stop
# DIR` stops it and deletes DIR. Installs the server package first when it is
# missing (root only; otherwise it says what to install). The server runs
# with fsync off, as tests need no durability across a power loss;
# PREFSYNC_PG_FSYNC=on keeps it on (benchmarks).
#
# TLS is on (plain connections are still accepted): DIR/ca.crt is a test CA
# that signed the server's certificate, which names `localhost` only (not
# 127.0.0.1), for the sslmode tests; they find DIR through `SHOW
# ssl_cert_file`. The role `prefsync_tls_only` (created by those tests) may
# only connect over TLS.
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

# A test CA and a server certificate for `localhost` signed by it, in DIR,
# owned by the server's user (it refuses a key file others can read).
make_certs() {
  local d=$1
  # (`&&`: errexit does not apply inside a subshell followed by `||`.)
  (
    cd "$d" && umask 077 &&
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=prefsync test CA" -keyout ca.key -out ca.crt \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=localhost" -keyout server.key -out server.csr &&
      printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >server.ext &&
      openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile server.ext -out server.crt &&
      chmod 644 ca.crt server.crt &&
      rm -f server.csr server.ext ca.key ca.srl
  ) >"$d/certs.log" 2>&1 || { cat "$d/certs.log" >&2; exit 1; }
  if [[ $(id -u) -eq 0 ]]; then chown postgres "$d/server.key" "$d/server.crt"; fi
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
    if ! command -v openssl >/dev/null; then
      if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl >&2
      else
        echo "openssl is not installed; install it to make the test server's TLS certificate" >&2
        exit 1
      fi
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ $(id -u) -eq 0 ]]; then chown postgres "$dir"; fi
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    make_certs "$dir"
    # First match wins: this role over plain TCP is rejected.
    { echo "hostnossl all prefsync_tls_only all reject"; cat "$dir/data/pg_hba.conf"; } >"$dir/pg_hba.new"
    cat "$dir/pg_hba.new" >"$dir/data/pg_hba.conf" && rm -f "$dir/pg_hba.new"
    # A free port: let the kernel pick one, then hand it to the server.
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-h 127.0.0.1 -p $port -k $dir -c fsync=${PREFSYNC_PG_FSYNC:-off} -c max_connections=300 -c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key" start >&2 \
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
