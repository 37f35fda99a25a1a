//! Signing keys as administrators see them: list with state, staged rotation (published first,
//! signing after a delay), retirement. Each change is audited as `key_changed`.

use crate::audit::{AuditEvent, AuditKind, Outcome};
use crate::oauth::keys::{KeyAdminError, KeyInfo, MAX_ACTIVATION_DELAY};

use super::{Actor, Admin, AdminError};

impl From<KeyAdminError> for AdminError {
    fn from(e: KeyAdminError) -> Self {
        match e {
            KeyAdminError::NotFound(_) => AdminError::NotFound(e.to_string()),
            KeyAdminError::Active(_) => AdminError::Conflict(e.to_string()),
            KeyAdminError::InvalidDelay(_) => AdminError::invalid("activate_after", e.to_string()),
            KeyAdminError::Key(e) => AdminError::Internal(e.to_string()),
        }
    }
}

fn key_changed(kid: &str) -> AuditEvent {
    AuditEvent::new(AuditKind::KeyChanged, Outcome::Ok).subject(kid)
}

impl Admin {
    /// Every stored key and its state, newest first.
    pub async fn keys(&self) -> Result<Vec<KeyInfo>, AdminError> {
        Ok(self
            .tokens
            .keys()
            .list()
            .await
            .map_err(KeyAdminError::from)?)
    }

    /// Add keys (one per signing algorithm) that are published at once and sign
    /// `activate_after` seconds from now (default `WXAUTH_KEY_ACTIVATION_DELAY_SECS`); the keys
    /// signing now retire then. Returns the new key that signs access tokens (in HS256 mode, the
    /// new ES256 ID-token key); the others are in the key list.
    pub async fn rotate_key(
        &self,
        actor: &Actor,
        activate_after: Option<i64>,
    ) -> Result<KeyInfo, AdminError> {
        let delay = activate_after.unwrap_or(self.key_activation_delay);
        if !(0..=MAX_ACTIVATION_DELAY).contains(&delay) {
            return Err(KeyAdminError::InvalidDelay(delay).into());
        }
        let (kids, activates_at) = self
            .tokens
            .keys()
            .rotate_staged_all(delay)
            .await
            .map_err(KeyAdminError::from)?;
        for kid in &kids {
            self.record(
                actor,
                key_changed(kid).detail("activates_at", activates_at),
                "rotate",
            )
            .await;
        }
        let kid = kids
            .first()
            .cloned()
            .ok_or_else(|| AdminError::Internal("no key generated".into()))?;
        self.keys()
            .await?
            .into_iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| AdminError::Internal(format!("new key {kid} not found")))
    }

    /// Retire a key that does not sign now (a pending one: its rotation is called off).
    pub async fn retire_key(&self, actor: &Actor, kid: &str) -> Result<KeyInfo, AdminError> {
        let key = self.tokens.keys().retire(kid).await?;
        self.record(actor, key_changed(kid), "retire").await;
        Ok(key)
    }
}
