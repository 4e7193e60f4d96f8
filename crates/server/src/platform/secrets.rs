//! Platform secrets kept in the database so that every node shares them (e.g. the key that
//! turns card numbers into fingerprints). Created on first use, never logged.

use super::db::Db;
use secrecy::SecretSlice;

pub async fn get_or_create(db: &Db, name: &str) -> anyhow::Result<SecretSlice<u8>> {
    let fresh = clipcart_domain::ids::random_secret(32);
    sqlx::query(
        "INSERT INTO platform_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(&fresh)
    .execute(&db.write)
    .await?;
    let value: String = sqlx::query_scalar("SELECT value FROM platform_secrets WHERE name = $1")
        .bind(name)
        .fetch_one(&db.write)
        .await?;
    Ok(SecretSlice::from(value.into_bytes()))
}
