//! The Mini Program approves sign-ins elsewhere (issue 18 §4), on the device authorization
//! grant (RFC 8628, `oauth::device`): the verification page shows a Mini Program code
//! (`wxa/getwxacodeunlimit`) whose `scene` is the user code; the person scans it with WeChat,
//! the Mini Program opens on its approval page (`WXAUTH_DEVICE_MINI_PROGRAM_PAGE`), shows which
//! client asks ([`DeviceApproval::describe`]) and answers ([`DeviceApproval::decide`]) with its
//! session. The device's next poll receives tokens for the session's account, or
//! `access_denied`.
//!
//! - The code is drawn once per user code and kept (in process) while the device authorization
//!   lives; it is drawn only for a user code that is pending, and each request for one counts
//!   as a user code tried (the device limits), so the image is no way to test codes faster.
//! - Every user code the Mini Program sends counts against the same limits as the page's, and
//!   the code is spent by the same one conditional UPDATE: one answer wins.
//! - The identity is the one WeChat gave the session (`jscode2session`), never the page's word.

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::DeviceMiniProgram;
use crate::fault::Fault;
use crate::login::{LoginError, MiniProgramLogin};
use crate::oauth::device::{
    DEVICE_CODE_TTL, Decision, DeviceAuthorizations, PendingDevice, UserCodeError,
    normalize_user_code,
};
use crate::ttl_cache::TtlCache;
use crate::wechat::client::Image;
use crate::wechat::mini_program_code::{CodeRequest, EnvVersion};
use crate::wechat::{AppId, WeChat, WeChatError};

/// The width (pixels) of the code drawn for the verification page.
pub const CODE_WIDTH: u32 = 430;

/// Why a Mini Program code or an answer was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// Malformed, unknown, expired or spent user code: one answer for all.
    #[error("this code is not valid; check it on the device, or start again there")]
    Refused,
    /// Too many user codes tried; retry after this many seconds.
    #[error("too many codes tried; retry later")]
    TooMany { retry_after_secs: u64 },
    /// No Mini Program is configured to approve devices.
    #[error("device approval with the Mini Program is not set up on this server")]
    NotConfigured,
    /// The Mini Program session is unknown or expired, or the account is disabled.
    #[error(transparent)]
    Session(#[from] LoginError),
    /// WeChat would not draw the code.
    #[error(transparent)]
    WeChat(#[from] WeChatError),
    /// Our storage failed.
    #[error("store: {0}")]
    Store(String),
}

impl ApprovalError {
    /// Whose fault this is (a refusal says nothing of why).
    pub fn fault(&self) -> Fault {
        match self {
            Self::Refused | Self::TooMany { .. } => Fault::Caller(self.to_string()),
            Self::NotConfigured => Fault::Unavailable(self.to_string()),
            Self::Session(error) => error.fault(),
            Self::WeChat(error) => error.fault(),
            Self::Store(message) => Fault::Internal(message.clone()),
        }
    }
}

impl From<UserCodeError> for ApprovalError {
    fn from(error: UserCodeError) -> Self {
        match error {
            UserCodeError::Refused => Self::Refused,
            UserCodeError::TooMany { retry_after_secs } => Self::TooMany { retry_after_secs },
            UserCodeError::Storage(error) => Self::Store(error.to_string()),
        }
    }
}

/// A device's request as the Mini Program shows it before the person answers.
#[derive(Debug, Clone)]
pub struct DeviceRequest {
    pub client_id: String,
    pub scope: Vec<String>,
    /// `XXXX-XXXX`.
    pub user_code: String,
}

/// The Mini Program as the approval screen for devices.
#[derive(Clone)]
pub struct DeviceApproval {
    pub config: Option<DeviceMiniProgram>,
    pub wechat: Arc<WeChat>,
    pub devices: DeviceAuthorizations,
    pub mini_program: MiniProgramLogin,
    pub clock: SharedClock,
    /// Drawn codes by user code, while a device authorization may live.
    pub codes: Arc<TtlCache<Arc<Image>>>,
}

impl DeviceApproval {
    pub fn new(
        config: Option<DeviceMiniProgram>,
        wechat: Arc<WeChat>,
        devices: DeviceAuthorizations,
        mini_program: MiniProgramLogin,
        clock: SharedClock,
    ) -> Self {
        Self {
            config,
            wechat,
            devices,
            mini_program,
            clock,
            codes: Arc::new(TtlCache::new(DEVICE_CODE_TTL)),
        }
    }

    /// Whether the verification page offers the Mini Program code.
    pub fn enabled(&self) -> bool {
        self.config.is_some()
    }

    /// The Mini Program code for the device waiting for `typed` (counts as a user code tried).
    pub async fn code_image(&self, typed: &str) -> Result<Arc<Image>, ApprovalError> {
        let config = self.config.as_ref().ok_or(ApprovalError::NotConfigured)?;
        let pending = self.devices.pending(typed).await?;
        let code = normalize_user_code(&pending.user_code).ok_or(ApprovalError::Refused)?;
        let now = self.clock.now();
        if let Some(image) = self.codes.get(&code, now) {
            return Ok(image);
        }
        let generation = self.codes.generation();
        let appid = AppId::parse(&config.appid).map_err(|_| ApprovalError::NotConfigured)?;
        let image = self
            .wechat
            .mini_program_code(
                &appid,
                &CodeRequest {
                    scene: &code,
                    page: &config.page,
                    check_path: config.version == "release",
                    env_version: EnvVersion::parse(&config.version).unwrap_or(EnvVersion::Release),
                    width: CODE_WIDTH,
                },
            )
            .await?;
        let image = Arc::new(image);
        self.codes.insert(&code, image.clone(), now, generation);
        Ok(image)
    }

    /// What the device waiting for `typed` asks, for the Mini Program page to show before the
    /// person answers (counts as a user code tried). The session must be live.
    pub async fn describe(
        &self,
        session_id: &str,
        typed: &str,
    ) -> Result<DeviceRequest, ApprovalError> {
        self.enabled_or_refuse()?;
        self.signed_in(session_id).await?;
        let PendingDevice {
            client_id,
            scope,
            user_code,
        } = self.devices.pending(typed).await?;
        Ok(DeviceRequest {
            client_id,
            scope,
            user_code,
        })
    }

    /// The person's answer from the Mini Program: approve or deny the device waiting for
    /// `typed`, as the account of `session_id`. Returns the client the answer was for.
    pub async fn decide(
        &self,
        session_id: &str,
        typed: &str,
        decision: Decision,
    ) -> Result<String, ApprovalError> {
        self.enabled_or_refuse()?;
        let (account_id, signed_in_at) = self.signed_in(session_id).await?;
        Ok(self
            .devices
            .decide(typed, account_id, signed_in_at, decision)
            .await?)
    }

    fn enabled_or_refuse(&self) -> Result<(), ApprovalError> {
        if self.enabled() {
            Ok(())
        } else {
            Err(ApprovalError::NotConfigured)
        }
    }

    /// The session's account and when it signed in; a disabled account approves nothing.
    async fn signed_in(&self, session_id: &str) -> Result<(i64, i64), ApprovalError> {
        let (_, account, signed_in_at) = self.mini_program.session_account(session_id).await?;
        if account.is_disabled() {
            return Err(LoginError::SessionUnknown.into());
        }
        Ok((account.id, signed_in_at))
    }
}
