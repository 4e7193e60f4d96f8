//! A software WebAuthn authenticator for the API tests: P-256 keys (ES256), "none" attestation,
//! CBOR by hand through `ciborium`. It builds `clientDataJSON` and `authenticatorData` the way a
//! browser and a platform authenticator would (rpIdHash, flags UP|UV(|AT), a counter that goes
//! up by one per assertion) and answers in the browser's JSON form, so tests can register and
//! use passkeys without a browser. Its `origin` and `rp_id` are fields: tests that check the
//! server's refusals set them wrong on purpose.

#![allow(dead_code)]

use crate::support::{Actor, TestApp};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ciborium::Value as Cbor;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_AT: u8 = 0x40;

/// One credential the authenticator holds (a discoverable one: it keeps the user handle).
#[derive(Clone)]
pub struct Cred {
    pub id: Vec<u8>,
    key: SigningKey,
    pub user_handle: Vec<u8>,
    pub rp_id: String,
    pub counter: u32,
}

#[derive(Clone)]
pub struct Authenticator {
    /// What `clientDataJSON.origin` claims (a browser puts the page's origin there).
    pub origin: String,
    /// Whose SHA-256 goes into `authenticatorData` (a browser enforces it matches the origin).
    pub rp_id: String,
    /// Whether the UV flag is set (a screen lock or PIN was checked).
    pub user_verified: bool,
    creds: Vec<Cred>,
}

pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub fn unb64(s: &str) -> Vec<u8> {
    B64.decode(s.trim_end_matches('='))
        .expect("options carry base64url")
}

impl Authenticator {
    /// An authenticator on the app's own origin (`public_url`, `http://localhost:<port>`).
    pub fn for_app(app: &TestApp) -> Authenticator {
        let origin = app
            .state
            .config
            .public_url
            .trim_end_matches('/')
            .to_string();
        let rp_id = origin
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split([':', '/']).next())
            .expect("public URL has a host")
            .to_string();
        Authenticator {
            origin,
            rp_id,
            user_verified: true,
            creds: Vec::new(),
        }
    }

    pub fn credentials(&self) -> &[Cred] {
        &self.creds
    }

    /// The most recently created credential's id, base64url.
    pub fn last_credential_id(&self) -> String {
        b64(&self.creds.last().expect("a credential").id)
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "type": kind,
            "challenge": challenge,
            "origin": self.origin,
            "crossOrigin": false,
        }))
        .expect("client data")
    }

    fn flags(&self) -> u8 {
        FLAG_UP | if self.user_verified { FLAG_UV } else { 0 }
    }

    /// Answers `navigator.credentials.create()` options (`public_key`), making a new key.
    pub fn register(&mut self, public_key: &Value) -> Value {
        let excluded: Vec<Vec<u8>> = public_key["excludeCredentials"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["id"].as_str())
                    .map(unb64)
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            !self.creds.iter().any(|c| excluded.contains(&c.id)),
            "this authenticator already holds a passkey of the account (excludeCredentials)"
        );
        let key = loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(k) = SigningKey::from_slice(&bytes) {
                break k;
            }
        };
        let id: [u8; 32] = rand::random();
        self.attest(public_key, key, id.to_vec())
    }

    /// Answers registration options with credential `index` again (a misbehaving or cloned
    /// authenticator offering a credential id that is already registered).
    pub fn reregister(&mut self, index: usize, public_key: &Value) -> Value {
        let Cred { key, id, .. } = self.creds[index].clone();
        self.attest(public_key, key, id)
    }

    fn attest(&mut self, public_key: &Value, key: SigningKey, id: Vec<u8>) -> Value {
        let challenge = public_key["challenge"].as_str().expect("challenge");
        let user_handle = unb64(public_key["user"]["id"].as_str().expect("user.id"));
        let point = key.verifying_key().to_sec1_point(false);
        let xy = point.as_bytes();
        let cose = Cbor::Map(vec![
            (Cbor::Integer(1.into()), Cbor::Integer(2.into())), // kty: EC2
            (Cbor::Integer(3.into()), Cbor::Integer((-7).into())), // alg: ES256
            (Cbor::Integer((-1).into()), Cbor::Integer(1.into())), // crv: P-256
            (Cbor::Integer((-2).into()), Cbor::Bytes(xy[1..33].to_vec())),
            (Cbor::Integer((-3).into()), Cbor::Bytes(xy[33..65].to_vec())),
        ]);
        let mut cose_bytes = Vec::new();
        ciborium::into_writer(&cose, &mut cose_bytes).expect("COSE key");
        let mut auth_data = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags() | FLAG_AT);
        auth_data.extend_from_slice(&0u32.to_be_bytes());
        auth_data.extend_from_slice(&[0u8; 16]); // AAGUID: none
        auth_data.extend_from_slice(&(id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&cose_bytes);
        let attestation = Cbor::Map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(vec![])),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
        ]);
        let mut attestation_bytes = Vec::new();
        ciborium::into_writer(&attestation, &mut attestation_bytes).expect("attestation object");
        let client_data = self.client_data("webauthn.create", challenge);
        self.creds.push(Cred {
            id: id.clone(),
            key,
            user_handle,
            rp_id: self.rp_id.clone(),
            counter: 0,
        });
        json!({
            "id": b64(&id),
            "rawId": b64(&id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "attestationObject": b64(&attestation_bytes),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        })
    }

    /// Answers `navigator.credentials.get()` options: with one of the allowed credentials, or
    /// (no `allowCredentials`: discoverable) with the newest credential for this RP id.
    pub fn assert(&mut self, public_key: &Value) -> Value {
        let allowed: Vec<Vec<u8>> = public_key["allowCredentials"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["id"].as_str())
                    .map(unb64)
                    .collect()
            })
            .unwrap_or_default();
        let rp_id = self.rp_id.clone();
        let index = self
            .creds
            .iter()
            .rposition(|c| c.rp_id == rp_id && (allowed.is_empty() || allowed.contains(&c.id)))
            .expect("the authenticator holds a passkey for this request");
        self.assert_with(index, public_key["challenge"].as_str().expect("challenge"))
    }

    /// Signs an assertion for `challenge` with credential `index` (no checks: for forgeries).
    pub fn assert_with(&mut self, index: usize, challenge: &str) -> Value {
        let client_data = self.client_data("webauthn.get", challenge);
        let flags = self.flags();
        let rp_hash = Sha256::digest(self.rp_id.as_bytes());
        let cred = &mut self.creds[index];
        cred.counter += 1;
        let mut auth_data = rp_hash.to_vec();
        auth_data.push(flags);
        auth_data.extend_from_slice(&cred.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let signature: Signature = cred.key.sign(&signed);
        json!({
            "id": b64(&cred.id),
            "rawId": b64(&cred.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "authenticatorData": b64(&auth_data),
                "signature": b64(signature.to_der().as_bytes()),
                "userHandle": b64(&cred.user_handle),
            },
            "clientExtensionResults": {},
        })
    }

    /// A copy of credential `index` under another authenticator: the same key and id (a
    /// cloned authenticator), for replay and counter tests.
    pub fn clone_credential(&self, index: usize) -> Cred {
        self.creds[index].clone()
    }

    pub fn add_credential(&mut self, cred: Cred) {
        self.creds.push(cred);
    }

    pub fn set_counter(&mut self, index: usize, counter: u32) {
        self.creds[index].counter = counter;
    }
}

// ---- API helpers ----

/// Registers a passkey for `actor` through the API (step-up: a fresh token needs no proof);
/// answers the stored passkey's JSON.
pub async fn register_passkey(app: &TestApp, actor: &Actor, auth: &mut Authenticator) -> Value {
    let started = app
        .post_ok(
            "/api/v1/me/passkeys/registrations",
            Some(&actor.token),
            json!({}),
            StatusCode::CREATED,
        )
        .await;
    let credential = auth.register(&started["public_key"]);
    app.post_ok(
        "/api/v1/me/passkeys",
        Some(&actor.token),
        json!({"ceremony_id": started["ceremony_id"], "name": "Test key", "credential": credential}),
        StatusCode::CREATED,
    )
    .await
}

/// Starts an anonymous passkey sign-in; answers `(ceremony_id, public_key)`.
pub async fn sign_in_challenge(app: &TestApp) -> (String, Value) {
    let v = app
        .post_ok(
            "/api/v1/auth/passkey/challenges",
            None,
            json!({}),
            StatusCode::CREATED,
        )
        .await;
    (
        v["ceremony_id"].as_str().expect("ceremony id").to_string(),
        v["public_key"].clone(),
    )
}

/// Signs in without a password; answers the status and body of `POST /auth/passkey/tokens`.
pub async fn passkey_sign_in(app: &TestApp, auth: &mut Authenticator) -> (StatusCode, Value) {
    let (ceremony, options) = sign_in_challenge(app).await;
    let credential = auth.assert(&options);
    app.post(
        "/api/v1/auth/passkey/tokens",
        None,
        json!({"ceremony_id": ceremony, "credential": credential}),
    )
    .await
}

/// Steps `actor`'s token up with a passkey assertion (the way an account whose second factor
/// is a passkey proves it is them before a sensitive change or an admin action).
pub async fn step_up_with_passkey(app: &TestApp, actor: &Actor, auth: &mut Authenticator) {
    let c = app
        .post_ok(
            "/api/v1/me/step-up/passkey/challenges",
            Some(&actor.token),
            json!({}),
            StatusCode::CREATED,
        )
        .await;
    let credential = auth.assert(&c["public_key"]);
    let (status, v) = app
        .post(
            "/api/v1/me/step-up/passkey",
            Some(&actor.token),
            json!({"ceremony_id": c["ceremony_id"], "credential": credential}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "passkey step-up answered {v}"
    );
}
