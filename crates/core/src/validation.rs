//! Request validation without any transport: collect every field violation
//! of a request, so the caller can answer once naming them all. Pure, so the
//! domain crates (schedules, for one) can use it without gRPC, databases or
//! NATS; the platform turns [`Violations`] into `INVALID_ARGUMENT`.

/// The most field violations one answer names.
pub const MAX_REPORTED: usize = 20;

/// Field violations gathered while checking one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Violations {
    items: Vec<(String, String)>,
}

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.items.push((field.into(), description.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(|(f, _)| f.as_str())
    }

    /// `Ok(())` when nothing was violated.
    pub fn into_result(self) -> Result<(), Violations> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// Checks a required text field: present, within `max_chars`, no control characters.
    pub fn text(&mut self, field: &str, value: &str, required: bool, max_chars: usize) {
        let trimmed = value.trim();
        if required && trimmed.is_empty() {
            self.add(field, "must not be empty");
        } else if value.chars().count() > max_chars {
            self.add(field, format!("must be at most {max_chars} characters"));
        } else if value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
        {
            self.add(field, "must not contain control characters");
        }
    }

    /// [`Violations::text`] for one-line fields (names, titles, labels, codes):
    /// no line breaks or tabs either, since they would show up in a heading, a
    /// log line or an email subject.
    pub fn line(&mut self, field: &str, value: &str, required: bool, max_chars: usize) {
        let before = self.items.len();
        self.text(field, value, required, max_chars);
        if self.items.len() == before && value.chars().any(char::is_control) {
            self.add(field, "must be one line, without control characters");
        }
    }

    /// Checks that `value` is a UUID; returns it when it is.
    pub fn uuid(&mut self, field: &str, value: &str) -> Option<uuid::Uuid> {
        match uuid::Uuid::parse_str(value.trim()) {
            Ok(id) => Some(id),
            Err(_) if value.trim().is_empty() => {
                self.add(field, "must not be empty");
                None
            }
            Err(_) => {
                self.add(field, "must be a UUID");
                None
            }
        }
    }

    /// The violations as (field, description), in the order found.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.items.iter().map(|(f, d)| (f.as_str(), d.as_str()))
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }
}

/// Checks a page size: 0 means `default`, otherwise 1..=`max`.
pub fn page_size(v: &mut Violations, field: &str, requested: i32, default: u64, max: u64) -> u64 {
    match requested {
        0 => default,
        n if n < 0 || n as u64 > max => {
            v.add(field, format!("must be between 1 and {max}"));
            default
        }
        n => n as u64,
    }
}

/// Deeper than this, offset paging is the wrong tool (and large values must never
/// reach SQL binders).
pub const MAX_PAGE_OFFSET: u64 = 100_000;

/// Decodes an offset page token (an opaque base64 string to clients).
pub fn page_offset(v: &mut Violations, field: &str, token: &str) -> u64 {
    use base64::Engine;
    if token.is_empty() {
        return 0;
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("o:").and_then(|n| n.parse().ok()))
        .filter(|offset| *offset <= MAX_PAGE_OFFSET)
        .unwrap_or_else(|| {
            v.add(field, "is not a token from a previous response");
            0
        })
}

pub fn encode_page_offset(offset: u64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("o:{offset}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_fields_refuse_line_breaks_that_text_fields_allow() {
        let mut v = Violations::new();
        v.text("description", "two\nlines\r\nand\ttabs", true, 100);
        v.line("name", "plain name", true, 100);
        assert!(v.is_empty());
        v.line("name", "two\nlines", true, 100);
        v.line("title", "a\rb", true, 100);
        v.line("label", "tab\there", false, 100);
        v.text("note", "bell\u{7}", false, 100);
        assert_eq!(
            v.fields().collect::<Vec<_>>(),
            ["name", "title", "label", "note"]
        );
    }
    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let mut v = Violations::new();
        assert_eq!(
            page_offset(&mut v, "page_token", &encode_page_offset(40)),
            40
        );
        assert!(v.is_empty());
        page_offset(&mut v, "page_token", "garbage!");
        page_offset(&mut v, "page_token", &encode_page_offset(u64::MAX));
        assert_eq!(
            v.fields().collect::<Vec<_>>(),
            vec!["page_token", "page_token"]
        );
        let mut v = Violations::new();
        assert_eq!(page_size(&mut v, "page_size", 0, 20, 100), 20);
        page_size(&mut v, "page_size", 101, 20, 100);
        assert!(!v.is_empty());
    }
}
