# shellcheck shell=bash
# Start a throwaway PostgreSQL server for the SQL-source tests, then export its URL.
#
#   source .ci/postgres.sh          # exports PPEVAL_TEST_POSTGRES_URL
#   python -m pytest -m postgres    # the tests marked `postgres` now run (they skip without it)
#   ppeval_pg_stop                  # optional: also runs on shell exit
#
# Installs Debian's `postgresql` package when no server binaries are present, creates a
# cluster in a temporary folder (owned by the `postgres` user when run as root: PostgreSQL
# refuses to run as root), starts it on 127.0.0.1 on a free port with trust authentication
# (loopback only, throwaway data) and creates the database `ppeval_test`.
# Safe under `set -euo pipefail`; on failure it prints why and returns non-zero.

ppeval_pg_stop() {
  if [ -n "${PPEVAL_PG_DIR:-}" ] && [ -d "${PPEVAL_PG_DIR}/data" ]; then
    ${PPEVAL_PG_RUNAS:-} "${PPEVAL_PG_BINDIR}/pg_ctl" -D "${PPEVAL_PG_DIR}/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "${PPEVAL_PG_DIR}"
  fi
  unset PPEVAL_PG_DIR PPEVAL_TEST_POSTGRES_URL
}

_ppeval_pg_start() {
  local bindir port owner
  if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    echo "postgres.sh: installing Debian's postgresql package" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    $sudo apt-get update -qq >/dev/null \
      && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null \
      || { echo "postgres.sh: could not install postgresql" >&2; return 1; }
  fi
  bindir=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d | sort -V | tail -n 1)
  [ -x "${bindir}/initdb" ] || { echo "postgres.sh: no initdb under /usr/lib/postgresql" >&2; return 1; }

  PPEVAL_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ppeval-pg.XXXXXX")
  chmod 755 "${PPEVAL_PG_DIR}"
  if [ "$(id -u)" -eq 0 ]; then
    owner=postgres
    id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "${PPEVAL_PG_DIR}"
    PPEVAL_PG_RUNAS="runuser -u postgres --"
  else
    owner=$(id -un)
    PPEVAL_PG_RUNAS=""
  fi
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

  ${PPEVAL_PG_RUNAS} "${bindir}/initdb" -D "${PPEVAL_PG_DIR}/data" -U postgres -A trust -E UTF8 --no-sync \
    >"${PPEVAL_PG_DIR}/initdb.log" 2>&1 \
    || { echo "postgres.sh: initdb failed (as ${owner}):" >&2; cat "${PPEVAL_PG_DIR}/initdb.log" >&2; return 1; }
  ${PPEVAL_PG_RUNAS} "${bindir}/pg_ctl" -D "${PPEVAL_PG_DIR}/data" -l "${PPEVAL_PG_DIR}/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p ${port} -k ${PPEVAL_PG_DIR} -c fsync=off -c full_page_writes=off" start >/dev/null \
    || { echo "postgres.sh: the server did not start:" >&2; cat "${PPEVAL_PG_DIR}/server.log" >&2; return 1; }
  "${bindir}/createdb" -h 127.0.0.1 -p "${port}" -U postgres ppeval_test \
    || { echo "postgres.sh: createdb failed" >&2; return 1; }

  export PPEVAL_PG_DIR PPEVAL_PG_RUNAS
  export PPEVAL_PG_BINDIR="${bindir}"
  export PPEVAL_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:${port}/ppeval_test"
  trap ppeval_pg_stop EXIT
  echo "postgres.sh: PostgreSQL $("${bindir}/postgres" --version | awk '{print $3}') on 127.0.0.1:${port}; PPEVAL_TEST_POSTGRES_URL=${PPEVAL_TEST_POSTGRES_URL}" >&2
}

_ppeval_pg_start
