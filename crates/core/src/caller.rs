//! Who is calling: the person a verified token names, their region and roles.

pub const ROLE_OPERATOR: &str = "operator";
pub const ROLE_ADMIN: &str = "admin";

/// The authenticated person behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub person_id: String,
    pub region: String,
    pub roles: Vec<String>,
    /// When the caller's token expires (Unix seconds): a long-lived stream
    /// ends then.
    pub expires_at: i64,
}

impl Caller {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// An operator (or admin) of exactly this region.
    pub fn is_operator_of(&self, region: &str) -> bool {
        self.region == region && (self.has_role(ROLE_OPERATOR) || self.has_role(ROLE_ADMIN))
    }
}
