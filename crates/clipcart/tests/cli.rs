//! The data-protection commands as an operator runs them: the binary against a SQLite data
//! folder. (The rotation and the chain checks themselves are tested on both databases in the
//! server's integration suite, `data_protection.rs`.)

use clipcart_server::platform::audit::{self, Entry};
use clipcart_server::platform::db::Db;
use std::path::Path;
use std::process::{Command, Output};

fn clipcart(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clipcart"));
    cmd.env_clear()
        .env("CLIPCART_DATA_DIR", data_dir)
        .env("CLIPCART_LOG", "warn")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("clipcart runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn keys_and_audit_commands() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();

    // First run: the master key is generated, owner-only, and announced (never printed).
    let out = clipcart(data, &["keys", "status"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let key_file = data.join("master.key");
    assert!(
        text(&out).contains("Generated the master key"),
        "{}",
        text(&out)
    );
    let key = std::fs::read_to_string(&key_file).expect("master.key");
    assert!(!text(&out).contains(key.trim()), "the key is never printed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(text(&out).contains("v1    current"), "{}", text(&out));

    // Rotation with no server running: no grace needed.
    let out = clipcart(data, &["keys", "rotate", "--grace-seconds", "0"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("data key v2 created"), "{said}");
    assert!(said.contains("data key v1 retired"), "{said}");
    assert!(said.contains("rotation complete"), "{said}");
    let out = clipcart(data, &["keys", "status"], &[]);
    let said = text(&out);
    assert!(
        said.contains("v2    current") && said.contains("v1    retired"),
        "{said}"
    );

    // Another master key does not open this database: a clear refusal.
    let other = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let out = clipcart(data, &["keys", "status"], &[("CLIPCART_MASTER_KEY", other)]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("master key does not open data key"),
        "{}",
        text(&out)
    );
    // Nor does a missing key file for an encrypted database get replaced silently.
    std::fs::rename(&key_file, data.join("master.key.bak")).expect("moved");
    let out = clipcart(data, &["keys", "status"], &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("missing"), "{}", text(&out));
    let out = clipcart(
        data,
        &["keys", "status"],
        &[(
            "CLIPCART_MASTER_KEY_FILE",
            data.join("master.key.bak").to_str().expect("path"),
        )],
    );
    assert!(out.status.success(), "{}", text(&out));

    // The audit chain: intact, then edited.
    let url = format!("sqlite://{}", data.join("clipcart.db").display());
    let db = Db::connect(&url, 2).await.expect("db");
    for i in 0..3 {
        audit::record_alone(
            &db,
            Entry::new(i, audit::SYSTEM, audit::action::STAFF_ROLE_DEFINE, "rol_x"),
        )
        .await
        .expect("recorded");
    }
    let out = clipcart(data, &["audit", "verify"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("audit log intact: 3 entries"),
        "{}",
        text(&out)
    );
    sqlx::query("UPDATE audit_log SET actor = 'usr_someone_else' WHERE seq = 2")
        .execute(&db.write)
        .await
        .expect("edited");
    db.close().await;
    let out = clipcart(data, &["audit", "verify"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("audit log BROKEN at entry 2: edited"),
        "{}",
        text(&out)
    );
}
