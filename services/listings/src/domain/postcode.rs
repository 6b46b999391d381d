//! UK postcode format check and normalisation ("ng15fs" → "NG1 5FS").

/// Returns the normalised postcode, or `None` when `input` is not a UK postcode.
/// Checks the shape only (outward code A9, A99, AA9, AA99, A9A or AA9A, then an
/// inward code 9AA); whether it exists is a lookup for the search issue.
pub fn normalise(input: &str) -> Option<String> {
    let compact: String = input
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if !(5..=7).contains(&compact.len()) || !compact.is_ascii() {
        return None;
    }
    let (outward, inward) = compact.split_at(compact.len() - 3);
    let inward_ok = {
        let b = inward.as_bytes();
        b[0].is_ascii_digit() && b[1].is_ascii_alphabetic() && b[2].is_ascii_alphabetic()
    };
    let shape: String = outward
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                '9'
            } else if c.is_ascii_alphabetic() {
                'A'
            } else {
                '?'
            }
        })
        .collect();
    let outward_ok = matches!(
        shape.as_str(),
        "A9" | "A99" | "AA9" | "AA99" | "A9A" | "AA9A"
    );
    (inward_ok && outward_ok).then(|| format!("{outward} {inward}"))
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn accepts_and_normalises_real_shapes() {
        assert_eq!(normalise("ng1 5fs").as_deref(), Some("NG1 5FS"));
        assert_eq!(normalise("NG15FS").as_deref(), Some("NG1 5FS"));
        assert_eq!(normalise("SW1A 1AA").as_deref(), Some("SW1A 1AA"));
        assert_eq!(normalise("M1 1AE").as_deref(), Some("M1 1AE"));
        assert_eq!(normalise("DN55 1PT").as_deref(), Some("DN55 1PT"));
    }

    #[test]
    fn rejects_non_postcodes() {
        for bad in [
            "",
            "12345",
            "NG1",
            "NOT A CODE",
            "NG1 5F5",
            "1G1 5FS",
            "NG1-5FS",
            "ŃG1 5FS",
        ] {
            assert_eq!(normalise(bad), None, "{bad}");
        }
    }
}
