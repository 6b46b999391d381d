//! Request validation: collect every field violation (the pure
//! [`selfhelp_validation`] crate), then answer `INVALID_ARGUMENT` with a
//! `google.rpc.BadRequest` detail naming the fields.

pub use selfhelp_validation::*;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `INVALID_ARGUMENT` naming the fields: the first [`MAX_REPORTED`], as the
/// status travels in HTTP/2 headers, which clients cap (16 KiB by default),
/// and a list of 600 bad elements would otherwise break the response.
pub fn status(violations: &Violations) -> Status {
    let reported: Vec<(&str, &str)> = violations.iter().take(MAX_REPORTED).collect();
    let mut summary = reported
        .iter()
        .map(|(f, d)| format!("{f}: {d}"))
        .collect::<Vec<_>>()
        .join("; ");
    if violations.len() > reported.len() {
        summary.push_str(&format!("; and {} more", violations.len() - reported.len()));
    }
    let mut details = ErrorDetails::new();
    for (field, description) in reported {
        details.add_bad_request_violation(field, description);
    }
    Status::with_error_details(Code::InvalidArgument, summary, details)
}

/// Reads the field names of a `google.rpc.BadRequest` detail (for clients and tests).
pub fn violated_fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|br| br.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_list_of_violations_is_cut_to_fit_in_headers() {
        let mut v = Violations::new();
        for i in 0..600 {
            v.add(format!("kinds[{i}]"), "is not a notification kind");
        }
        let status = status(&v);
        assert_eq!(violated_fields(&status).len(), MAX_REPORTED);
        assert!(
            status.message().ends_with("and 580 more"),
            "{}",
            status.message()
        );
        assert!(status.message().len() + status.details().len() < 4_096);
    }

    #[test]
    fn status_names_every_field() {
        let mut v = Violations::new();
        v.text("name", "  ", true, 10);
        v.text("summary", &"x".repeat(11), false, 10);
        v.uuid("group_id", "nope");
        let status = status(&v);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            violated_fields(&status),
            vec!["name", "summary", "group_id"]
        );
    }
}
