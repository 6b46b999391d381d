//! Is the work shared? Self-help groups try to avoid "the few doing the
//! most". One figure says how far a group is from that: the share of the
//! turns taken by its busiest fifth of people. With everyone doing the same
//! it is a fifth (0.2); with one person doing everything it is 1.
//!
//! It describes, it does not judge: a small group with a willing chair may be
//! content with a high figure. It is shown to organisers only, never public.

/// The share (0–1) of all turns taken by the busiest fifth of `turns` (each
/// person's count; at least one person counts as the fifth). 0 when there
/// are no turns.
pub fn busiest_fifth_share(turns: &[u32]) -> f64 {
    let total: u32 = turns.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let mut sorted = turns.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let fifth = sorted.len().div_ceil(5).max(1);
    f64::from(sorted[..fifth].iter().sum::<u32>()) / f64::from(total)
}

/// The first days of the quarters (three calendar months each) from `from`
/// up to `to`, the first starting at `from`.
pub fn quarters(from: chrono::NaiveDate, to: chrono::NaiveDate) -> Vec<chrono::NaiveDate> {
    // Each counted from `from`, so a month's end does not drift (31 August,
    // 30 November, 28 February, 31 May).
    (0..40u32)
        .map_while(|i| from.checked_add_months(chrono::Months::new(3 * i)))
        .take_while(|at| *at <= to)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_fifth_by_hand() {
        // Six people: the busiest fifth is two of them (rounded up), who took
        // 5 + 1 of the 10 turns.
        assert!((busiest_fifth_share(&[1, 5, 1, 1, 1, 1]) - 0.6).abs() < 1e-9);
        // Five sharing alike: one person took a fifth.
        assert!((busiest_fifth_share(&[2, 2, 2, 2, 2]) - 0.2).abs() < 1e-9);
        // One person doing it all, whoever else is there.
        assert!((busiest_fifth_share(&[0, 7, 0]) - 1.0).abs() < 1e-9);
        assert_eq!(busiest_fifth_share(&[]), 0.0);
        assert_eq!(busiest_fifth_share(&[0, 0]), 0.0);
    }

    #[test]
    fn a_year_is_four_quarters() {
        let d = |s: &str| s.parse::<chrono::NaiveDate>().unwrap();
        assert_eq!(
            quarters(d("2026-01-01"), d("2026-12-31")),
            [
                d("2026-01-01"),
                d("2026-04-01"),
                d("2026-07-01"),
                d("2026-10-01")
            ]
        );
        assert_eq!(
            quarters(d("2026-08-31"), d("2027-06-01")),
            [
                d("2026-08-31"),
                d("2026-11-30"),
                d("2027-02-28"),
                d("2027-05-31")
            ]
        );
    }
}
