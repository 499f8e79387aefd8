//! `schema.graphql` is the contract frontends and load scripts build against: it must be exactly
//! what the code exports. Regenerate with `cargo run -- sdl > schema.graphql`.

#[test]
fn committed_schema_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql is committed at the project root");
    let exported = concert_reservation::graphql::sdl();
    assert!(
        committed == exported,
        "schema.graphql differs from the schema the code exports; run `cargo run -- sdl > schema.graphql` \
         and review the diff.\n--- exported ---\n{exported}"
    );
}
