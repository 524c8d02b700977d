// Embedded migrations are read at compile time; rebuild when one is added or edited.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=migrations_postgres");
}
