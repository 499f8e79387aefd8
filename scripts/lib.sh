# Shared by the project's scripts: paths, the build cache and tool checks. Source it, don't run it.

PROJECT_ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
RUN_DIR="$PROJECT_ROOT/.run"
mkdir -p "$RUN_DIR"

# Builds go to a cache outside the clone, so a fresh clone on a kept machine reuses them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/concert-reservation/target}"
export PATH="$HOME/.cargo/bin:$PATH"

export DATABASE_URL="${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/concert_reservation}"

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

require_cargo() {
  command -v cargo >/dev/null 2>&1 || die "cargo is not installed: install Rust from https://rustup.rs"
}

# psql against the server behind DATABASE_URL, but on the maintenance database.
psql_admin() {
  local admin_url="${DATABASE_URL%/*}/postgres"
  psql "$admin_url" -v ON_ERROR_STOP=1 -qAt "$@"
}
