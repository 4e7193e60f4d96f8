//! `sqlx::migrate!` embeds `migrations/` at compile time; without this a new migration file
//! would not rebuild the crate (stable Rust cannot track the folder from the macro).
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
