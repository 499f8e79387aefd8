//! Rebuilds the crate when a migration is added or changed: `embed_migrations!` reads
//! `migrations/` at compile time, and cargo does not know it depends on that directory (the
//! advice of diesel_migrations' documentation).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
