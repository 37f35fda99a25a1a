//! The seed's user fields in the token response, for clients registered with `--seed-fields`:
//! the seed's token endpoint answered `tenant_id`, `teacher_id`, `student_id`, `real_name`,
//! `role_name`, `license`, `user_id`, `role_id` and `dept_id` beside the standard fields. wxauth
//! knows none of them (they came from the seed's own user tables, and its example response has
//! them empty); front ends that read them get the seed's values, so they keep working unchanged.

use serde::Serialize;

/// The seed's `license` value, verbatim from its example response.
pub const SEED_LICENSE: &str = "powered by xiaozao";

/// The extra fields of the seed's token response, as its example shows them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SeedFields {
    pub tenant_id: String,
    pub teacher_id: String,
    pub student_id: String,
    pub real_name: String,
    pub role_name: String,
    pub license: String,
    pub user_id: String,
    pub role_id: String,
    pub dept_id: String,
}

impl SeedFields {
    /// The values of the seed's example: all empty but `license`.
    pub fn seed_defaults() -> Self {
        Self {
            tenant_id: String::new(),
            teacher_id: String::new(),
            student_id: String::new(),
            real_name: String::new(),
            role_name: String::new(),
            license: SEED_LICENSE.to_owned(),
            user_id: String::new(),
            role_id: String::new(),
            dept_id: String::new(),
        }
    }
}
