//! `schema.graphql` is the contract frontends and load scripts build against: it must be exactly
//! what the code exports. Regenerate with `cargo run -- sdl > schema.graphql`.

#[test]
fn committed_schema_matches_the_code() {
    // The directory at run time (cargo and nextest set it), not the one baked in at compile time:
    // the build cache is shared between clones.
    let root = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let committed = std::fs::read_to_string(format!("{root}/schema.graphql"))
        .expect("schema.graphql is committed at the project root");
    let exported = concert_reservation::graphql::sdl();
    assert!(
        committed == exported,
        "schema.graphql differs from the schema the code exports; run `cargo run -- sdl > schema.graphql` \
         and review the diff.\n--- exported ---\n{exported}"
    );
}
