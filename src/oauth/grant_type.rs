//! The grant types wxauth serves: one list, from which client registration, the token endpoint's
//! dispatch, the public-client rule and the metadata document all read.

use std::fmt;

/// A grant type the token endpoint accepts (`grant_type`), and that a client may be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    /// RFC 6749 §4.1, with PKCE and OpenID Connect.
    AuthorizationCode,
    /// RFC 6749 §4.4: a service acting for itself.
    ClientCredentials,
    /// RFC 6749 §6, with rotation and families.
    RefreshToken,
    /// `flow`: the name the system wxauth replaces gave its WeChat-identity grant, kept for
    /// compatibility; a login ticket proves the identity.
    Flow,
    /// A `wx.login` code straight to tokens.
    MiniProgram,
    /// RFC 8628: a device without a browser (TV, CLI, kiosk) polls while its user approves on
    /// another device at `/device`.
    DeviceCode,
}

impl GrantType {
    /// Every grant type, in the order the metadata document lists them.
    pub const ALL: [GrantType; 6] = [
        Self::AuthorizationCode,
        Self::ClientCredentials,
        Self::RefreshToken,
        Self::Flow,
        Self::MiniProgram,
        Self::DeviceCode,
    ];

    /// The `grant_type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken => "refresh_token",
            Self::Flow => "flow",
            Self::MiniProgram => "mini_program",
            Self::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
        }
    }

    /// The grant type named `name`, if wxauth serves it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == name)
    }

    /// Whether a public client (no secret) may use it: only the grants a user's browser or app
    /// drives with PKCE or a token it holds, and the device grant (RFC 8628 §5.6: devices cannot
    /// keep a secret; the user's approval is the proof).
    pub fn open_to_public_clients(self) -> bool {
        matches!(
            self,
            Self::AuthorizationCode | Self::RefreshToken | Self::DeviceCode
        )
    }

    /// Every `grant_type` value, for documents and messages.
    pub fn names() -> [&'static str; 6] {
        Self::ALL.map(Self::as_str)
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::GrantType;

    #[test]
    fn every_name_parses_back_to_its_grant() {
        for grant in GrantType::ALL {
            assert_eq!(GrantType::parse(grant.as_str()), Some(grant));
        }
        assert_eq!(GrantType::parse("password"), None);
        assert_eq!(GrantType::parse("Flow"), None);
    }
}
