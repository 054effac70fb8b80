//! Reading every alert open in iLert, newest first, in windows of `reportTime`: pure, so that
//! the way back's paging is tested for every order and boundary without a server.
//!
//! iLert pages `GET /api/alerts` by `start-index`, and its own advice is to page "based on the
//! `reportTime` field using the parameters `from` and `until`". An index alone is not safe
//! while the set changes: an alert resolved by someone else between two pages moves every
//! later alert one place up, and the one that slides across the page boundary is never read.
//! So a full page narrows the window by time instead (keyset paging): the next request asks
//! only for alerts on the unread side of the page's oldest or newest `reportTime`, and an
//! alert resolved meanwhile cannot hide another.
//!
//! iLert documents neither the list's order nor whether `from` and `until` are inclusive. The
//! scan works with any: a page sorted newest first continues below its oldest alert (the
//! newest are read first by construction); one sorted oldest first continues above its newest,
//! and the rest is cut into windows from the top, an hour, then two, four, … (so the newest
//! are still read first, and a stretch of years with no alert costs a few requests, not one a
//! page); a page in no order cuts its own window the same way. Each bound is set one millisecond past the page's boundary, so an alert exactly on
//! it is asked for again under either reading, and read twice rather than never. Only when a
//! window cannot be narrowed (more alerts in one millisecond than a page holds) does the scan
//! fall back to `start-index` inside it.

use crate::domain::alert::{AlertId, AlertStatus};

/// One request's window: alerts reported in `[from_ms, until_ms]` (milliseconds since the
/// epoch; how the server reads each bound does not matter, see above), from `start_index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// `None`: no lower bound (the oldest alert there is).
    pub from_ms: Option<i64>,
    pub until_ms: i64,
    pub start_index: usize,
    /// Already cut from a larger window: a page sorted oldest first reads on upwards in it
    /// rather than cutting it again.
    cut: bool,
}

/// An alert as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: AlertId,
    pub status: AlertStatus,
    /// Its `reportTime`, when it reads as one.
    pub report_ms: Option<i64>,
}

/// What is left to read of one scan: windows, the next on top. Kept from one pass to the next
/// so that a scan too long for one pass goes on where it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    windows: Vec<Window>,
}

impl Scan {
    /// A scan of every alert reported up to `now_ms`, newest first.
    pub fn from_top(now_ms: i64) -> Self {
        Self {
            windows: vec![Window {
                from_ms: None,
                until_ms: now_ms + 1,
                start_index: 0,
                cut: false,
            }],
        }
    }

    /// The window to ask for next; `None` when the scan has read everything.
    pub fn next(&self) -> Option<Window> {
        self.windows.last().copied()
    }

    pub fn done(&self) -> bool {
        self.windows.is_empty()
    }

    /// Takes the answer to [`next`](Self::next): `page` as listed, `page_size` the most a page
    /// holds. Every step narrows a window or moves on by index, so a scan always ends.
    pub fn read(&mut self, page: &[Listed], page_size: usize) {
        let Some(window) = self.windows.pop() else {
            return;
        };
        if page.len() < page_size {
            return;
        }
        let times: Option<Vec<i64>> = page.iter().map(|alert| alert.report_ms).collect();
        let newest_first = times
            .as_ref()
            .filter(|t| t.windows(2).all(|pair| pair[0] >= pair[1]));
        let oldest_first = times
            .as_ref()
            .filter(|t| t.windows(2).all(|pair| pair[0] <= pair[1]));
        let lower = window.from_ms.unwrap_or(0);
        let narrowed = if let Some(oldest) = newest_first.and_then(|t| t.last()) {
            // The page holds the window's newest alerts: the rest are at or below its oldest.
            let until_ms = oldest.saturating_add(1);
            (until_ms < window.until_ms).then_some(vec![Window {
                until_ms,
                start_index: 0,
                ..window
            }])
        } else if let Some(newest) = oldest_first.and_then(|t| t.last()) {
            // The page holds the window's oldest alerts: the rest are at or above its newest.
            let from_ms = newest.saturating_sub(1);
            (from_ms > lower).then(|| {
                if window.cut {
                    vec![Window {
                        from_ms: Some(from_ms),
                        start_index: 0,
                        ..window
                    }]
                } else {
                    cut_from_top(from_ms, window.until_ms)
                }
            })
        } else {
            // No order to go by: cut the window and read its parts again.
            (window.until_ms - lower > 2).then(|| cut_from_top(lower, window.until_ms))
        };
        match narrowed {
            Some(windows) => self.windows.extend(windows),
            // Nothing narrower is possible: the next page of the same window by index.
            None => self.windows.push(Window {
                start_index: window.start_index + page_size,
                ..window
            }),
        }
    }
}

/// The first cut below the top: an hour, or half the span if that is shorter.
const FIRST_CUT_MS: i64 = 3_600_000;

/// `[from_ms, until_ms]` cut into windows from the top, each twice as long as the one above
/// it (the first an hour, or half the span), the newest on top of the stack. Neighbours
/// overlap by a millisecond so that neither reading of a bound loses an alert on it.
fn cut_from_top(from_ms: i64, until_ms: i64) -> Vec<Window> {
    let mut size = ((until_ms - from_ms) / 2).clamp(1, FIRST_CUT_MS);
    let mut cuts = Vec::new();
    let mut upper = until_ms;
    while upper - size > from_ms + 1 {
        upper -= size;
        cuts.push(upper);
        size = size.saturating_mul(2);
    }
    let mut windows = Vec::with_capacity(cuts.len() + 1);
    let mut lower = (from_ms > 0).then_some(from_ms);
    for cut in cuts.iter().rev() {
        windows.push(Window {
            from_ms: lower,
            until_ms: cut + 1,
            start_index: 0,
            cut: true,
        });
        lower = Some(*cut);
    }
    windows.push(Window {
        from_ms: lower,
        until_ms,
        start_index: 0,
        cut: true,
    });
    windows
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// A server's ordering of its list.
    #[derive(Clone, Copy, Debug)]
    enum Order {
        NewestFirst,
        OldestFirst,
        ById,
    }

    /// How a server reads `from` and `until`.
    #[derive(Clone, Copy, Debug)]
    struct Bounds {
        from_inclusive: bool,
        until_inclusive: bool,
    }

    /// A list server over `(id, report_ms)` pairs: every alert is open.
    fn serve(
        alerts: &[(u64, i64)],
        window: Window,
        order: Order,
        bounds: Bounds,
        page_size: usize,
    ) -> Vec<Listed> {
        let mut inside: Vec<(u64, i64)> = alerts
            .iter()
            .copied()
            .filter(|(_, at)| match window.from_ms {
                None => true,
                Some(from) if bounds.from_inclusive => *at >= from,
                Some(from) => *at > from,
            })
            .filter(|(_, at)| {
                if bounds.until_inclusive {
                    *at <= window.until_ms
                } else {
                    *at < window.until_ms
                }
            })
            .collect();
        match order {
            Order::NewestFirst => inside.sort_by_key(|a| std::cmp::Reverse((a.1, a.0))),
            Order::OldestFirst => inside.sort_by_key(|a| (a.1, a.0)),
            Order::ById => inside.sort(),
        }
        inside
            .into_iter()
            .skip(window.start_index)
            .take(page_size)
            .map(|(id, at)| Listed {
                id: AlertId::parse(&id.to_string()).unwrap(),
                status: AlertStatus::Pending,
                report_ms: Some(at),
            })
            .collect()
    }

    /// Runs a whole scan; returns the ids read, in the order first read, and the requests.
    fn scan_all(
        alerts: &[(u64, i64)],
        order: Order,
        bounds: Bounds,
        now: i64,
    ) -> (Vec<u64>, usize) {
        let mut scan = Scan::from_top(now);
        let mut read = Vec::new();
        let mut seen = BTreeSet::new();
        let mut requests = 0;
        while let Some(window) = scan.next() {
            requests += 1;
            assert!(requests < 10_000, "the scan does not end");
            let page = serve(alerts, window, order, bounds, 100);
            for alert in &page {
                let id: u64 = alert.id.as_str().parse().unwrap();
                if seen.insert(id) {
                    read.push(id);
                }
            }
            scan.read(&page, 100);
        }
        (read, requests)
    }

    const NOW: i64 = 1_780_000_000_000;

    fn every_bounds() -> [Bounds; 4] {
        [(true, true), (true, false), (false, true), (false, false)].map(|(f, u)| Bounds {
            from_inclusive: f,
            until_inclusive: u,
        })
    }

    #[test]
    fn every_alert_is_read_once_whatever_the_order_and_the_reading_of_the_bounds() {
        // 1,234 alerts over three days, some sharing a millisecond, ids not in time order.
        let alerts: Vec<(u64, i64)> = (0..1234u64)
            .map(|i| {
                (
                    10_000 + (i * 7919) % 1234,
                    NOW - 3 * 86_400_000 + (i as i64 / 3) * 200_000,
                )
            })
            .collect();
        for order in [Order::NewestFirst, Order::OldestFirst, Order::ById] {
            for bounds in every_bounds() {
                let (read, requests) = scan_all(&alerts, order, bounds, NOW);
                let all: BTreeSet<u64> = alerts.iter().map(|(id, _)| *id).collect();
                assert_eq!(read.len(), all.len(), "{order:?} {bounds:?}");
                assert_eq!(read.iter().copied().collect::<BTreeSet<_>>(), all);
                // Newest first: one request a page (13 pages and the empty last one would be
                // 14; the last page is short). Oldest first: a few more for the cuts.
                match order {
                    Order::NewestFirst => assert_eq!(requests, 13, "{bounds:?}"),
                    Order::OldestFirst => assert!(requests <= 13 + 8, "{bounds:?}: {requests}"),
                    Order::ById => {}
                }
            }
        }
    }

    #[test]
    fn the_newest_alerts_come_first_in_either_order() {
        // The newest reported ten minutes ago, the others 800 s apart before it.
        let alerts: Vec<(u64, i64)> = (0..3000u64)
            .map(|i| (i, NOW - 600_000 - (2999 - i as i64) * 800_000))
            .collect();
        for order in [Order::NewestFirst, Order::OldestFirst] {
            for bounds in every_bounds() {
                let mut scan = Scan::from_top(NOW);
                let mut seen = BTreeSet::new();
                for _ in 0..8 {
                    let window = scan.next().unwrap();
                    let page = serve(&alerts, window, order, bounds, 100);
                    for alert in &page {
                        seen.insert(alert.id.as_str().parse::<u64>().unwrap());
                    }
                    scan.read(&page, 100);
                }
                // The newest 100 are read within the first eight requests.
                assert!(
                    (2900..3000).all(|id| seen.contains(&id)),
                    "{order:?} {bounds:?}: newest not all read ({} read)",
                    seen.len()
                );
            }
        }
    }

    #[test]
    fn more_alerts_in_one_millisecond_than_a_page_are_read_by_index() {
        let mut alerts: Vec<(u64, i64)> = (0..250).map(|i| (i, NOW - 1000)).collect();
        alerts.extend((250..300).map(|i| (i, NOW - 5000 - i as i64)));
        for order in [Order::NewestFirst, Order::OldestFirst, Order::ById] {
            for bounds in every_bounds() {
                let (read, _) = scan_all(&alerts, order, bounds, NOW);
                assert_eq!(read.len(), 300, "{order:?} {bounds:?}");
            }
        }
    }

    #[test]
    fn a_short_page_ends_its_window() {
        let mut scan = Scan::from_top(NOW);
        scan.read(&[], 100);
        assert!(scan.done());
    }
}
