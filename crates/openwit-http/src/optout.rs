//! Opt-outs as servers send them: the `X-Robots-Tag` header and `<meta name="robots">`, read
//! the way Google documents them ("Robots meta tag, data-nosnippet, and X-Robots-Tag
//! specifications"), shared by the crawler, the WARC/WAT readers and the downloader.
//!
//! - A value is a list of rules separated by commas (`;` is accepted too); several headers add
//!   up. Rule names, agents and the header name compare case-insensitively.
//! - `agent: rule, rule` scopes the rules that follow, up to the end of the value or the next
//!   agent prefix, to that agent: they count for us only when the agent is our product token or
//!   `*`. A rule without a prefix counts for every agent. A prefix is recognised only when it is
//!   followed by a known rule, so `max-snippet: 20` or `unavailable_after: <date>` is a rule with
//!   a value, never an agent.
//! - `unavailable_after: <date>` takes a date in the formats Google accepts (RFC 822/1123,
//!   RFC 850, asctime, ISO 8601 and the like: `25 Jun 2010 15:00:00 PST`,
//!   `Friday, 25-Jun-10 15:00:00 GMT`, `2010-06-25T15:00:00+02:00`, `June 25, 2010`); once the
//!   date has passed it works as `noindex`. A date that does not parse is ignored and kept in
//!   [`Directives::bad_dates`].
//! - `none` means `noindex, nofollow`.
//!
//! Whether the rules opt a page or image out depends on the directive set the caller honours
//! ([`OPT_OUT_DIRECTIVES`] by default) and on "now", which the caller passes (in the stages,
//! [`openwit_core::clock::output_time_s`], which `SOURCE_DATE_EPOCH` fixes).
//!
//! ```
//! use openwit_http::optout::{Directives, OPT_OUT_DIRECTIVES};
//!
//! let now = 1_700_000_000.0; // 2023-11-14
//! let d = Directives::from_header("otherbot: noai, noindex", "openwit");
//! assert_eq!(d.opt_out(&OPT_OUT_DIRECTIVES, now), None);
//! let d = Directives::from_header("unavailable_after: 25 Jun 2010 15:00:00 PST", "openwit");
//! assert_eq!(d.opt_out(&OPT_OUT_DIRECTIVES, now).as_deref(), Some("unavailable_after"));
//! ```

/// The directives that opt out by default: no AI use, no indexing (of the page or its images).
pub const OPT_OUT_DIRECTIVES: [&str; 5] = ["noai", "noimageai", "noindex", "noimageindex", "none"];

/// The product token the stages answer to unless configured otherwise.
pub const DEFAULT_TOKEN: &str = "openwit";

/// Rule names that take a value after a colon (so the name is never read as an agent).
const VALUED_RULES: [&str; 4] = [
    "unavailable_after",
    "max-snippet",
    "max-image-preview",
    "max-video-preview",
];

/// Rule names that may follow an agent prefix (Google's list, the AI opt-outs, and a few other
/// engines' rules that appear in the wild).
const KNOWN_RULES: [&str; 24] = [
    "all",
    "index",
    "follow",
    "noindex",
    "nofollow",
    "none",
    "noarchive",
    "nocache",
    "nosnippet",
    "indexifembedded",
    "notranslate",
    "noimageindex",
    "noai",
    "noimageai",
    "noodp",
    "noydir",
    "noyaca",
    "nositelinkssearchbox",
    "unavailable_after",
    "max-snippet",
    "max-image-preview",
    "max-video-preview",
    "noml",
    "notrain",
];

/// The rules of one or more `X-Robots-Tag` values and robots `<meta>` tags that apply to one
/// product token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directives {
    /// Rule names that apply to us, lowercase, in order (a value such as `max-snippet`'s dropped).
    pub rules: Vec<String>,
    /// The earliest `unavailable_after` date that applies to us, Unix seconds.
    pub unavailable_after: Option<i64>,
    /// `unavailable_after` values that apply to us but are not a date (ignored).
    pub bad_dates: Vec<String>,
}

/// The product token of an agent name: its lowercase prefix of `[a-zA-Z_-]` (RFC 9309's
/// product-token characters), so `OpenWIT/1.0` and `openwit bot` give `openwit`.
pub fn product_token(agent: &str) -> String {
    agent
        .trim()
        .bytes()
        .take_while(|b| b.is_ascii_alphabetic() || *b == b'_' || *b == b'-')
        .map(|b| char::from(b.to_ascii_lowercase()))
        .collect()
}

impl Directives {
    /// The rules of one `X-Robots-Tag` header value for the product token `token`.
    pub fn from_header(value: &str, token: &str) -> Self {
        let mut d = Directives::default();
        d.add_header(value, token);
        d
    }

    /// The rules of several `X-Robots-Tag` header values.
    pub fn from_headers<'a>(values: impl IntoIterator<Item = &'a str>, token: &str) -> Self {
        let mut d = Directives::default();
        for v in values {
            d.add_header(v, token);
        }
        d
    }

    /// Adds one `X-Robots-Tag` header value: rules without an agent prefix count.
    pub fn add_header(&mut self, value: &str, token: &str) {
        self.add(value, &product_token(token), true);
    }

    /// Adds one `<meta name content>`: `robots` applies to every agent, a name equal to our
    /// product token to us, any other name (`googlebot`) to someone else. Returns whether the
    /// tag was a robots tag for us.
    pub fn add_meta(&mut self, name: &str, content: &str, token: &str) -> bool {
        let name = name.trim();
        let token = product_token(token);
        let ours = name.eq_ignore_ascii_case("robots")
            || (!token.is_empty() && name.eq_ignore_ascii_case(&token));
        if ours {
            self.add(content, &token, true);
        }
        ours
    }

    fn add(&mut self, value: &str, token: &str, unscoped_applies: bool) {
        let items: Vec<&str> = value.split([',', ';']).collect();
        let mut applies = unscoped_applies;
        let mut i = 0;
        while i < items.len() {
            let mut item = items[i].trim();
            i += 1;
            if item.is_empty() {
                continue;
            }
            if let Some((head, rest)) = item.split_once(':') {
                let agent = head.trim().to_ascii_lowercase();
                if is_agent(&agent) && starts_with_known_rule(rest) {
                    applies = agent == "*" || agent == token;
                    item = rest.trim();
                }
            }
            let (name, value) = match item.split_once(':') {
                Some((n, v)) => (n.trim().to_ascii_lowercase(), Some(v.trim())),
                None => (item.to_ascii_lowercase(), None),
            };
            if name == "unavailable_after" {
                let v = value.unwrap_or("");
                // A date may hold commas (`Fri, 25 Jun 2010 ...`, `June 25, 2010`): take up to
                // two more items while the text is not yet a date and they are not rules.
                let mut text = v.to_string();
                let mut date = parse_date(&text);
                let mut taken = 0;
                while date.is_none()
                    && taken < 2
                    && let Some(next) = items.get(i + taken)
                    && !starts_with_known_rule(next)
                    && !is_agent_prefixed(next)
                {
                    text.push(',');
                    text.push_str(next);
                    taken += 1;
                    date = parse_date(&text);
                }
                if !applies {
                    if date.is_some() {
                        i += taken;
                    }
                    continue;
                }
                match date {
                    Some(t) => {
                        i += taken;
                        self.unavailable_after =
                            Some(self.unavailable_after.map_or(t, |u| u.min(t)));
                    }
                    None => self.bad_dates.push(v.to_string()),
                }
                self.rules.push(name);
                continue;
            }
            if applies && !name.is_empty() {
                self.rules.push(name);
            }
        }
    }

    /// Whether a rule named `name` (lowercase) applies.
    pub fn has(&self, name: &str) -> bool {
        self.rules.iter().any(|r| r == name)
    }

    /// Whether links must not be followed (`nofollow` or `none`).
    pub fn nofollow(&self) -> bool {
        self.has("nofollow") || self.has("none")
    }

    /// The directive that opts out, given the set honoured (`noai`, `noindex`, ...,
    /// case-insensitive) and the time now (Unix seconds): the first rule in the set, else `none`
    /// when `noindex` is in the set, else `unavailable_after` when its date is at or before
    /// `now` and `noindex` is in the set.
    pub fn opt_out<S: AsRef<str>>(&self, set: &[S], now_s: f64) -> Option<String> {
        let in_set = |n: &str| {
            set.iter()
                .any(|s| s.as_ref().trim().eq_ignore_ascii_case(n))
        };
        if let Some(r) = self.rules.iter().find(|r| in_set(r)) {
            return Some(r.clone());
        }
        if in_set("noindex") {
            if self.has("none") {
                return Some("none".into());
            }
            if let Some(t) = self.unavailable_after
                && (t as f64) <= now_s
            {
                return Some("unavailable_after".into());
            }
        }
        None
    }
}

fn is_agent(s: &str) -> bool {
    s == "*"
        || (!s.is_empty()
            && !VALUED_RULES.contains(&s)
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'))
}

/// Whether `s` (after optional spaces) begins with a known rule name.
fn starts_with_known_rule(s: &str) -> bool {
    let s = s.trim_start();
    let end = s
        .find(|c: char| c == ':' || c == ',' || c == ';' || c.is_whitespace())
        .unwrap_or(s.len());
    let word = s.get(..end).unwrap_or("").to_ascii_lowercase();
    KNOWN_RULES.contains(&word.as_str())
}

fn is_agent_prefixed(s: &str) -> bool {
    s.split_once(':').is_some_and(|(h, rest)| {
        is_agent(&h.trim().to_ascii_lowercase()) && starts_with_known_rule(rest)
    })
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Offset from UTC in minutes of the time zone names RFC 822 defines, and a few common others.
fn zone_offset(name: &str) -> Option<i64> {
    Some(match name {
        "gmt" | "ut" | "utc" | "z" | "wet" => 0,
        "est" => -5 * 60,
        "edt" => -4 * 60,
        "cst" => -6 * 60,
        "cdt" => -5 * 60,
        "mst" => -7 * 60,
        "mdt" => -6 * 60,
        "pst" => -8 * 60,
        "pdt" => -7 * 60,
        "akst" => -9 * 60,
        "akdt" => -8 * 60,
        "hst" => -10 * 60,
        "bst" | "cet" | "west" => 60,
        "cest" | "eet" => 2 * 60,
        "eest" | "msk" => 3 * 60,
        "ist" => 5 * 60 + 30,
        "jst" | "kst" => 9 * 60,
        "aest" => 10 * 60,
        "aedt" => 11 * 60,
        _ => return None,
    })
}

/// A name (`Jun`, `June`, `jun.`) as a month number 1 to 12.
fn month_of(word: &str) -> Option<u32> {
    if word.len() < 3 {
        return None;
    }
    MONTHS
        .iter()
        .position(|m| m.starts_with(word))
        .map(|i| i as u32 + 1)
}

fn is_weekday(word: &str) -> bool {
    word.len() >= 3 && WEEKDAYS.iter().any(|d| d.starts_with(word) || *d == word)
}

/// `+hhmm`, `-hh:mm`, `+hh` as minutes east of UTC.
fn numeric_offset(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = s.get(1..)?.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        2 => (digits.parse::<i64>().ok()?, 0),
        4 => (
            digits.get(..2)?.parse::<i64>().ok()?,
            digits.get(2..)?.parse::<i64>().ok()?,
        ),
        _ => return None,
    };
    (h <= 14 && m < 60).then_some(sign * (h * 60 + m))
}

/// `hh:mm[:ss[.fff]]` as seconds of the day.
fn time_of_day(s: &str) -> Option<i64> {
    let mut parts = s.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let sec = match parts.next() {
        Some(x) => {
            let whole = x.split(['.', ',']).next()?;
            if whole.is_empty() || !whole.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            whole.parse::<i64>().ok()?
        }
        None => 0,
    };
    if parts.next().is_some() || h > 24 || m > 59 || sec > 60 || (h == 24 && (m, sec) != (0, 0)) {
        return None;
    }
    Some(h * 3600 + m * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

fn to_unix(y: i64, mo: u32, d: u32, secs: i64, offset_min: i64) -> Option<i64> {
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || !(1..=9999).contains(&y) {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + secs - offset_min * 60)
}

/// ISO 8601: `YYYY-MM-DD` (or `/`), then optionally `T` or a space, `hh:mm[:ss[.f]]` and a zone
/// (`Z`, `+hh:mm`, `+hhmm`, `+hh`, or a name after a space).
fn parse_iso(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 10 || !b[..4].iter().all(u8::is_ascii_digit) || !matches!(b[4], b'-' | b'/') {
        return None;
    }
    let sep = b[4];
    if b[7] != sep {
        return None;
    }
    let y: i64 = s.get(..4)?.parse().ok()?;
    let mo: u32 = s.get(5..7)?.parse().ok()?;
    let d: u32 = s.get(8..10)?.parse().ok()?;
    let rest = s.get(10..)?;
    if rest.trim().is_empty() {
        return to_unix(y, mo, d, 0, 0);
    }
    let rest = rest
        .strip_prefix(['T', 't', ' '])
        .map(str::trim_start)
        .unwrap_or(rest);
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.' || c == ','))
        .unwrap_or(rest.len());
    let (time, zone) = rest.split_at(end);
    let secs = time_of_day(time)?;
    let zone = zone.trim();
    let offset = if zone.is_empty() {
        0
    } else if let Some(o) = numeric_offset(zone) {
        o
    } else {
        zone_offset(&zone.to_ascii_lowercase())?
    };
    to_unix(y, mo, d, secs, offset)
}

/// A date as Google reads `unavailable_after`, as Unix seconds (UTC when no zone is given).
pub fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(t) = parse_iso(s) {
        return Some(t);
    }
    let (mut year, mut month, mut day) = (None::<i64>, None::<u32>, None::<u32>);
    let (mut secs, mut offset) = (None::<i64>, None::<i64>);
    let mut pm = None::<bool>;
    let mut words: Vec<String> = s
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_matches(['(', ')']).to_ascii_lowercase())
        .rev()
        .collect();
    while let Some(w) = words.pop() {
        let w = w.trim_end_matches('.');
        if w.is_empty() {
            continue;
        }
        if let Some(o) = numeric_offset(w)
            && offset.is_none()
            && secs.is_some()
        {
            offset = Some(o);
        } else if w.contains(':') {
            // a time, perhaps with a zone glued on (`15:00:00Z`, `15:00+0200`)
            let cut = w
                .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.'))
                .unwrap_or(w.len());
            let (t, z) = w.split_at(cut);
            if secs.is_some() {
                return None;
            }
            secs = Some(time_of_day(t)?);
            if !z.is_empty() {
                offset = Some(numeric_offset(z).or_else(|| zone_offset(z))?);
            }
        } else if w.contains('-') && w.bytes().any(|c| c.is_ascii_alphabetic()) {
            // RFC 850: `25-Jun-10`
            for part in w.split('-').rev() {
                words.push(part.to_string());
            }
        } else if w.bytes().all(|c| c.is_ascii_digit()) {
            let n: i64 = w.parse().ok()?;
            if w.len() >= 3 {
                if year.replace(n).is_some() {
                    return None;
                }
            } else if day.is_none() {
                day = Some(u32::try_from(n).ok()?);
            } else if year.is_none() {
                // two-digit years as RFC 5322 reads them
                year = Some(if n < 50 { 2000 + n } else { 1900 + n });
            } else {
                return None;
            }
        } else if let Some(m) = month_of(w) {
            if month.replace(m).is_some() {
                return None;
            }
        } else if is_weekday(w) {
        } else if w == "am" || w == "pm" {
            pm = Some(w == "pm");
        } else if let Some(o) = zone_offset(w) {
            offset = Some(o);
        } else {
            return None;
        }
    }
    let mut secs = secs.unwrap_or(0);
    if let Some(pm) = pm {
        let h = secs / 3600;
        if !(1..=12).contains(&h) {
            return None;
        }
        secs += match (pm, h) {
            (true, 12) | (false, 1..12) => 0,
            (true, _) => 12 * 3600,
            (false, _) => -12 * 3600,
        };
    }
    to_unix(year?, month?, day?, secs, offset.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2020-01-01T00:00:00Z
    const NOW_2020: f64 = 1_577_836_800.0;

    /// Each form Google documents, and the forms that used to be misread: (header values,
    /// token, expected opt-out at 2020-01-01 with the default set, expected `nofollow`).
    #[test]
    fn header_forms() {
        let cases: &[(&[&str], &str, Option<&str>, bool)] = &[
            // the issue's header: a date, not an agent
            (
                &["noindex, unavailable_after: 25 Jun 2010 15:00:00 PST"],
                "openwit",
                Some("noindex"),
                false,
            ),
            (
                &["unavailable_after: 25 Jun 2010 15:00:00 PST"],
                "openwit",
                Some("unavailable_after"),
                false,
            ),
            (
                &["all, unavailable_after: 25 Jun 2040 15:00:00 PST"],
                "openwit",
                None,
                false,
            ),
            (&["noai"], "openwit", Some("noai"), false),
            (&["NoImageAI"], "openwit", Some("noimageai"), false),
            (&["noimageindex"], "openwit", Some("noimageindex"), false),
            (&["none"], "openwit", Some("none"), true),
            (&["noindex, nofollow"], "openwit", Some("noindex"), true),
            (&["index,follow"], "openwit", None, false),
            (&["all; noai"], "openwit", Some("noai"), false),
            (
                &["max-snippet: 20, max-image-preview: large"],
                "openwit",
                None,
                false,
            ),
            (&["max-snippet: 20, noai"], "openwit", Some("noai"), false),
            // several headers add up
            (
                &["all", "nofollow", "noimageai"],
                "openwit",
                Some("noimageai"),
                true,
            ),
            // an agent prefix scopes the rules after it, up to the next one
            (&["otherbot: noai"], "openwit", None, false),
            (&["otherbot: noindex, nofollow"], "openwit", None, false),
            (
                &["googlebot: nofollow", "otherbot: noindex, nofollow"],
                "openwit",
                None,
                false,
            ),
            (&["OpenWIT: noindex"], "openwit", Some("noindex"), false),
            (&["openwit: noai"], "OpenWIT/1.0", Some("noai"), false),
            (&["*: noai"], "openwit", Some("noai"), false),
            (
                &["otherbot: noai, openwit: nofollow"],
                "openwit",
                None,
                true,
            ),
            (
                &["openwit: nofollow, otherbot: noai"],
                "openwit",
                None,
                true,
            ),
            (
                &["otherbot: noai", "noimageindex"],
                "openwit",
                Some("noimageindex"),
                false,
            ),
            (
                &["googlebot: unavailable_after: 2010-06-25"],
                "openwit",
                None,
                false,
            ),
            (
                &["openwit: unavailable_after: 2010-06-25"],
                "openwit",
                Some("unavailable_after"),
                false,
            ),
            // an unknown rule with a value is not an agent and scopes nothing
            (&["foo: bar, noai"], "openwit", Some("noai"), false),
            // dates with commas, in each family of formats
            (
                &["unavailable_after: Fri, 25 Jun 2010 15:00:00 GMT"],
                "openwit",
                Some("unavailable_after"),
                false,
            ),
            (
                &["unavailable_after: Friday, 25-Jun-10 15:00:00 GMT, nofollow"],
                "openwit",
                Some("unavailable_after"),
                true,
            ),
            (
                &["unavailable_after: June 25, 2010"],
                "openwit",
                Some("unavailable_after"),
                false,
            ),
            (
                &["unavailable_after: Fri Jun 25 15:00:00 2010"],
                "openwit",
                Some("unavailable_after"),
                false,
            ),
            (
                &["unavailable_after: 2010-06-25T15:00:00+02:00"],
                "openwit",
                Some("unavailable_after"),
                false,
            ),
            (
                &["unavailable_after: Fri, 25 Jun 2049 15:00:00 GMT, noarchive"],
                "openwit",
                None,
                false,
            ),
            // not a date: ignored
            (&["unavailable_after: soon"], "openwit", None, false),
            (&["unavailable_after:"], "openwit", None, false),
            (&[""], "openwit", None, false),
            (&[",,;"], "openwit", None, false),
        ];
        for (values, token, want, nofollow) in cases {
            let d = Directives::from_headers(values.iter().copied(), token);
            assert_eq!(
                d.opt_out(&OPT_OUT_DIRECTIVES, NOW_2020).as_deref(),
                *want,
                "{values:?} for {token}: {d:?}"
            );
            assert_eq!(d.nofollow(), *nofollow, "{values:?} nofollow");
        }
    }

    #[test]
    fn unavailable_after_is_a_date_and_the_clock_decides() {
        let d = Directives::from_header(
            "noindex, unavailable_after: 25 Jun 2010 15:00:00 PST",
            "openwit",
        );
        // 2010-06-25T23:00:00Z
        assert_eq!(d.unavailable_after, Some(1_277_506_800));
        assert_eq!(d.rules, ["noindex", "unavailable_after"]);
        let d = Directives::from_header("unavailable_after: 25 Jun 2010 15:00:00 PST", "x");
        let set = ["noindex"];
        assert_eq!(d.opt_out(&set, 1_277_506_799.0), None, "a second before");
        assert_eq!(
            d.opt_out(&set, 1_277_506_800.0).as_deref(),
            Some("unavailable_after")
        );
        // a set without noindex does not honour it
        assert_eq!(d.opt_out(&["noai"], NOW_2020), None);
        // the earliest of two dates counts
        let d = Directives::from_headers(
            [
                "unavailable_after: 2030-01-01",
                "unavailable_after: 2019-12-31T23:59:59Z",
            ],
            "openwit",
        );
        assert_eq!(d.unavailable_after, Some(1_577_836_799));
        let d = Directives::from_header("unavailable_after: 31 Feb 2010", "openwit");
        assert_eq!(d.bad_dates, ["31 Feb 2010"]);
        assert_eq!(d.unavailable_after, None);
    }

    #[test]
    fn none_counts_as_noindex_for_a_downloader_set() {
        let set = ["noai", "noimageai", "noindex", "noimageindex"].map(String::from);
        let d = Directives::from_header("none", "openwit");
        assert_eq!(d.opt_out(&set, NOW_2020).as_deref(), Some("none"));
        assert_eq!(d.opt_out(&["noai"], NOW_2020), None);
    }

    #[test]
    fn meta_names() {
        let mut d = Directives::default();
        assert!(d.add_meta(" ROBOTS ", "index, follow", "openwit"));
        assert!(!d.add_meta("googlebot", "noindex", "openwit"));
        assert_eq!(d.opt_out(&OPT_OUT_DIRECTIVES, NOW_2020), None);
        assert!(d.add_meta("OpenWIT", "noai", "openwit/2.0"));
        assert_eq!(
            d.opt_out(&OPT_OUT_DIRECTIVES, NOW_2020).as_deref(),
            Some("noai")
        );
        let mut d = Directives::default();
        d.add_meta("robots", "unavailable_after: 2020-09-21", "openwit");
        assert_eq!(d.opt_out(&OPT_OUT_DIRECTIVES, NOW_2020), None);
        assert_eq!(
            d.opt_out(&OPT_OUT_DIRECTIVES, NOW_2020 + 366.0 * 86_400.0)
                .as_deref(),
            Some("unavailable_after")
        );
    }

    /// Each date format, against the Unix time `date -u -d` gives for it.
    #[test]
    fn date_formats() {
        let cases: &[(&str, Option<i64>)] = &[
            ("25 Jun 2010 15:00:00 PST", Some(1_277_506_800)),
            ("Fri, 25 Jun 2010 23:00:00 GMT", Some(1_277_506_800)),
            ("Fri, 25 Jun 2010 23:00:00 +0000", Some(1_277_506_800)),
            ("Fri, 25 Jun 2010 16:00:00 -0700", Some(1_277_506_800)),
            ("Friday, 25-Jun-10 23:00:00 GMT", Some(1_277_506_800)),
            ("Fri Jun 25 23:00:00 2010", Some(1_277_506_800)),
            ("2010-06-25T23:00:00Z", Some(1_277_506_800)),
            ("2010-06-25T23:00:00.250Z", Some(1_277_506_800)),
            ("2010-06-26T01:00:00+02:00", Some(1_277_506_800)),
            ("2010-06-25 23:00", Some(1_277_506_800)),
            ("2010/06/25 23:00:00 UTC", Some(1_277_506_800)),
            ("June 25, 2010 11:00:00 pm", Some(1_277_506_800)),
            ("25 June 2010 23:00 UTC", Some(1_277_506_800)),
            ("2010-06-25", Some(1_277_424_000)),
            ("25 Jun 99", Some(930_268_800)),
            ("29 Feb 2024", Some(1_709_164_800)),
            ("29 Feb 2023", None),
            ("2010-13-01", None),
            ("25 Jun", None),
            ("Jun 2010", None),
            ("25 Jun 2010 25:00", None),
            ("25 Foo 2010", None),
            ("tomorrow", None),
            ("", None),
            ("2010-06-25Tx", None),
            ("25 Jun 2010 12:00 am", Some(1_277_424_000)),
            ("25 Jun 2010 13:00 pm", None),
            ("é25 Jun 2010", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_date(s), *want, "{s}");
        }
    }

    #[test]
    fn product_tokens() {
        assert_eq!(product_token("OpenWIT/1.0 (+https://x)"), "openwit");
        assert_eq!(product_token(" Foo_Bar-baz x"), "foo_bar-baz");
        assert_eq!(product_token("ツbot"), "");
        assert_eq!(product_token("*"), "");
    }

    #[test]
    fn multibyte_text_does_not_panic() {
        for v in [
            "ツ: noai",
            "noai: ツ",
            "unavailable_after: ツ, ツ",
            "max-snippet: é",
            "é",
            "unavailable_after: 2010-06-2ツ",
            "unavailable_after: +ツ",
            "unavailable_after: 10:0ツ",
            "unavailable_after: 2010-06-25T10:00+ツ",
        ] {
            let d = Directives::from_header(v, "openwit");
            let _ = d.opt_out(&OPT_OUT_DIRECTIVES, NOW_2020);
        }
    }
}
