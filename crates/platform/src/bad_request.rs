//! Bad requests on the wire: the violations a request collected
//! ([`selfhelp_core::validation`]) answered as `INVALID_ARGUMENT` with a
//! `google.rpc.BadRequest` detail naming the fields, and offset pages read from
//! a `PageRequest`.

use selfhelp_core::validation::*;
use selfhelp_proto::common::v1::{PageRequest, PageResponse};
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

/// An offset page asked for with a `PageRequest`: its size checked (0 means
/// `default`, at most `max`) and its token decoded, violations named under
/// `page.`. The count-and-offset pager of every paged list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetPage {
    pub offset: u64,
    pub limit: u64,
}

impl OffsetPage {
    pub fn asked(v: &mut Violations, page: Option<&PageRequest>, default: u64, max: u64) -> Self {
        let empty = PageRequest::default();
        let page = page.unwrap_or(&empty);
        OffsetPage {
            limit: page_size(v, "page.page_size", page.page_size, default, max),
            offset: page_offset(v, "page.page_token", &page.page_token),
        }
    }

    /// The answer's page after `returned` rows of `total`: a token for the
    /// next page while rows remain.
    pub fn answer(&self, returned: usize, total: u64) -> PageResponse {
        let next = self.offset + returned as u64;
        PageResponse {
            next_page_token: if next < total {
                encode_page_offset(next)
            } else {
                String::new()
            },
            total_size: i64::try_from(total).unwrap_or(i64::MAX),
        }
    }
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
    fn an_offset_page_answers_with_a_token_while_rows_remain() {
        let mut v = Violations::new();
        let first = OffsetPage::asked(&mut v, None, 20, 100);
        assert_eq!(
            first,
            OffsetPage {
                offset: 0,
                limit: 20
            }
        );
        let answer = first.answer(20, 45);
        assert_eq!(answer.total_size, 45);
        let asked = PageRequest {
            page_size: 0,
            page_token: answer.next_page_token,
        };
        let second = OffsetPage::asked(&mut v, Some(&asked), 20, 100);
        assert_eq!(second.offset, 20);
        assert!(!second.answer(20, 45).next_page_token.is_empty());
        assert!(second.answer(25, 45).next_page_token.is_empty());
        assert!(v.is_empty());
        let too_big = PageRequest {
            page_size: 101,
            page_token: "x".into(),
        };
        OffsetPage::asked(&mut v, Some(&too_big), 20, 100);
        assert_eq!(
            v.fields().collect::<Vec<_>>(),
            ["page.page_size", "page.page_token"]
        );
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
