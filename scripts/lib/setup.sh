# Shared set-up for scripts/run, scripts/test and the benchmarks: installs the
# Debian and Python packages Herald's build, tests and benchmarks need, when missing.
# Sourced, not executed.

herald_root() { cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd; }

herald_need_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "setup: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        # Postfix asks how it should be configured; "No configuration" keeps it inert:
        # Herald's tests and benchmarks start private Postfix instances of their own.
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
        if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
            apt-get update -q >/dev/null
            apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
        fi
    fi
}

herald_setup() {
    herald_need_packages pkg-config libssl-dev libc-ares-dev dnsmasq-base openssl postfix swaks libnet-ssleay-perl libauthen-sasl-perl procps python3-pip ca-certificates opendkim-tools iproute2
    # Postfix's package may start a system instance; Herald never uses it and its
    # port 25 must not be confused with Herald's listeners.
    if command -v postfix >/dev/null && [ -f /etc/postfix/main.cf ] && postfix status >/dev/null 2>&1; then
        postfix stop >/dev/null 2>&1 || true
    fi
    if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
        python3 -m pip install -q aiosmtpd 2>/dev/null || python3 -m pip install -q --break-system-packages aiosmtpd
    fi
    # DKIM signatures are checked by an independent verifier: dkimpy (dnspython for its
    # DNS look-ups, PyNaCl for Ed25519); TLS tests make their CA and certificates with
    # cryptography.
    if ! python3 -c 'import dkim, dns.resolver, nacl, cryptography' 2>/dev/null; then
        python3 -m pip install -q dkimpy dnspython pynacl cryptography 2>/dev/null \
            || python3 -m pip install -q --break-system-packages dkimpy dnspython pynacl cryptography
    fi
    # /metrics is checked with the reference parser of the Prometheus text format.
    if ! python3 -c 'import prometheus_client' 2>/dev/null; then
        python3 -m pip install -q prometheus_client 2>/dev/null \
            || python3 -m pip install -q --break-system-packages prometheus_client
    fi
    # The web console's browser tests: Debian's Chromium, driven by Python Playwright
    # through executable_path. Playwright's own browser downloads are never used.
    herald_need_packages chromium
    if ! python3 -c 'import playwright.sync_api' 2>/dev/null; then
        PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 python3 -m pip install -q playwright 2>/dev/null \
            || PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 python3 -m pip install -q --break-system-packages playwright
    fi
    herald_setup_postgres
}

# PostgreSQL for the campaign store: libpq-dev to build (the CLibPQ module), the server
# binaries (initdb, postgres, createdb) for the tests, which start private servers of
# their own in temporary directories (HeraldTestSupport.PostgresServer). As root those
# run as the `postgres` user the package creates. Herald never uses a system cluster:
# if the package started one (Debian does, on port 5432), it is stopped.
herald_setup_postgres() {
    local fresh=0
    dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q "install ok installed" || fresh=1
    herald_need_packages postgresql libpq-dev
    if [ "$fresh" = 1 ] && command -v pg_lsclusters >/dev/null; then
        pg_lsclusters --no-header 2>/dev/null | while read -r version cluster port status _; do
            if [ "$status" = "online" ]; then
                pg_ctlcluster "$version" "$cluster" stop >/dev/null 2>&1 || true
            fi
        done
    fi
}

# A self-signed development certificate for STARTTLS, made at first run, never committed.
herald_dev_cert() {
    local dir="$1"
    mkdir -p "$dir"
    if [ ! -s "$dir/dev-cert.pem" ] || [ ! -s "$dir/dev-key.pem" ]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=localhost" \
            -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
            -keyout "$dir/dev-key.pem" -out "$dir/dev-cert.pem" >/dev/null 2>&1
        chmod 600 "$dir/dev-key.pem"
    fi
}

# A local PostgreSQL for scripts/run when [database] url is empty: a cluster in
# var/pg (made once, owned by the postgres user when run as root), listening on
# 127.0.0.1:$2 only. Sets HERALD_DATABASE_URL, which Herald uses when url = "".
herald_local_postgres() {
    local dir="$1" port="$2" bin user=""
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
    [ -x "$bin/initdb" ] || bin="$(dirname "$(command -v initdb)")"
    [ "$(id -u)" = 0 ] && user="postgres"
    run_pg() { if [ -n "$user" ]; then runuser -u "$user" -- "$@"; else "$@"; fi; }
    mkdir -p "$dir"
    [ -n "$user" ] && chown "$user" "$dir"
    if [ -n "$user" ] && ! runuser -u "$user" -- test -w "$dir"; then
        # The checkout is not reachable by the postgres user (e.g. under /root).
        dir="/var/tmp/herald-pg-$(printf %s "$dir" | md5sum | cut -c1-8)"
        mkdir -p "$dir" && chown "$user" "$dir"
    fi
    HERALD_PG_DIR="$dir"
    if [ ! -s "$dir/data/PG_VERSION" ]; then
        run_pg "$bin/initdb" -D "$dir/data" -U herald --auth=trust -E UTF8 >/dev/null
    fi
    if ! run_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        run_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir" start >/dev/null
    fi
    run_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U herald -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'herald'" | grep -q 1 \
        || run_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U herald herald
    export HERALD_DATABASE_URL="postgres://herald@127.0.0.1:$port/herald"
}

herald_stop_local_postgres() {
    local dir="$1" bin user=""
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
    [ -x "$bin/pg_ctl" ] || bin="$(dirname "$(command -v pg_ctl 2>/dev/null || echo /usr/bin/pg_ctl)")"
    [ "$(id -u)" = 0 ] && user="postgres"
    if [ -s "$dir/data/PG_VERSION" ]; then
        if [ -n "$user" ]; then runuser -u "$user" -- "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
        else "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true; fi
    fi
}
