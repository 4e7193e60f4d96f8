//! Everything the database holds, as text, for tests that look for what must not be stored.

use crate::support::{Backend, TestApp};
use sqlx::Row;

pub async fn database_text(app: &TestApp) -> String {
    let pool = &app.state.db.read;
    let tables: Vec<String> = match app.backend {
        Backend::Sqlite => {
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(pool)
                .await
                .expect("tables")
        }
        Backend::Postgres => {
            sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
                .fetch_all(pool)
                .await
                .expect("tables")
        }
    };
    let mut out = String::new();
    for t in tables {
        let sql = match app.backend {
            // SQLite: quote() renders every column value as SQL text.
            Backend::Sqlite => {
                let cols: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT name FROM pragma_table_info('{t}')"
                )))
                .fetch_all(pool)
                .await
                .expect("columns");
                let exprs: Vec<String> = cols.iter().map(|c| format!("quote(\"{c}\")")).collect();
                format!("SELECT {} FROM \"{t}\"", exprs.join(" || ',' || "))
            }
            Backend::Postgres => format!("SELECT t::text FROM \"{t}\" t"),
        };
        for row in sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .expect("rows")
        {
            let text: String = row.try_get(0).unwrap_or_default();
            out.push_str(&text);
            out.push('\n');
        }
    }
    out
}
