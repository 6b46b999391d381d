//! The JetStream streams events travel on: one per context, named in the
//! contracts so that producers, consumers and partners agree on them without
//! the shared platform knowing which contexts exist.

/// A JetStream stream of one context, and the services that may speak on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSpec {
    pub name: &'static str,
    /// The context's part of the subject: `selfhelp.<region>.<context>.…`.
    pub context: &'static str,
    /// Services whose events belong here (`urn:selfhelp:<region>:<service>`).
    pub speakers: &'static [&'static str],
    /// Its events name people (who joined what, who asked to be erased): kept
    /// only `nats.restricted_max_age_hours`, and never readable by partners.
    pub restricted: bool,
}

pub const LISTINGS: StreamSpec = StreamSpec {
    name: "LISTINGS",
    context: "listings",
    speakers: &["listings"],
    restricted: false,
};
pub const MEMBERSHIP: StreamSpec = StreamSpec {
    name: "MEMBERSHIP",
    context: "membership",
    speakers: &["membership"],
    restricted: true,
};
/// The directory as the public sees it, for partners: listed groups only, no
/// person ids, notes or drafts (`events.v1.PublicGroupChanged`, `…Withdrawn`).
/// No service consumes it; partners pull from consumers listings makes for them.
pub const PUBLIC: StreamSpec = StreamSpec {
    name: "PUBLIC",
    context: "public",
    speakers: &["listings"],
    restricted: false,
};
/// Erasure requests (from membership) and every service's confirmations.
pub const PRIVACY: StreamSpec = StreamSpec {
    name: "PRIVACY",
    context: "privacy",
    speakers: &["membership", "listings", "notifications", "gateway"],
    restricted: true,
};

impl StreamSpec {
    /// Everything the stream captures, all regions.
    pub fn subjects(&self) -> String {
        format!("selfhelp.*.{}.>", self.context)
    }

    /// What one region's consumers read.
    pub fn region_filter(&self, region: &str) -> String {
        format!("selfhelp.{region}.{}.>", self.context)
    }

    /// `selfhelp.<region>.<context>.<aggregate>.<event>`
    pub fn subject(&self, region: &str, event: &str) -> String {
        format!("selfhelp.{region}.{}.{event}", self.context)
    }

    /// `org.selfhelp.<context>.<aggregate>.<event>.v1`
    pub fn ce_type(&self, event: &str) -> String {
        format!("org.selfhelp.{}.{event}.v1", self.context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_types() {
        assert_eq!(
            LISTINGS.subject("notts", "group.published"),
            "selfhelp.notts.listings.group.published"
        );
        assert_eq!(
            LISTINGS.ce_type("group.published"),
            "org.selfhelp.listings.group.published.v1"
        );
        assert_eq!(MEMBERSHIP.subjects(), "selfhelp.*.membership.>");
        assert_eq!(
            MEMBERSHIP.region_filter("notts"),
            "selfhelp.notts.membership.>"
        );
    }
}
