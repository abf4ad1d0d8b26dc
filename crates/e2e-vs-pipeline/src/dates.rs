//! Translation with a known answer, for P5 (claim E-7): human-readable dates in many formats
//! and four languages → ISO dates (`2021-03-07`), in two worlds, and the rule-based pipeline
//! (tokenise → parse with a grammar → generate) they are compared against.
//!
//! **Dates.** Uniform over the days from 1950-01-01 to 2049-12-31. **Clean formats** (each
//! equally likely): `7 March 2021`, `March 7, 2021` (English), `07/03/2021` (day/month/year),
//! `7 mars 2021` (French), `7. März 2021` (German), `7 de marzo de 2021` (Spanish).
//!
//! **Worlds.** In the *clean* world every input is a clean format, which the rules cover
//! completely. In the *messy* world ([`World::messy`]) each input is, independently: with
//! probability `unknown_share` one of the [`Variant`]s the rules do not know (a typo in the
//! month name, an ordinal day `7th`, a two-digit year `'21`, the year first `2021 March 7`,
//! dots in a numeric date `07.03.2021`), chosen uniformly; otherwise with probability
//! `known_share` one the rules do know (an abbreviated month `Mar`/`Sept.`, all upper or lower
//! case, doubled spaces); otherwise clean. The rules are right on every clean and known input
//! and wrong on every unknown one, by construction (tested).
//!
//! **Determinism.** A corpus comes from a seed alone through SplitMix64 (no global generator).
//! [`Corpus::generate`] draws the test set first and then the training pairs, rejecting any
//! training input that appears among the test inputs: no test input is ever seen in training.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Date {
    /// Year, 1950–2049.
    pub year: u32,
    /// Month, 1–12.
    pub month: u32,
    /// Day of the month, from 1.
    pub day: u32,
}

impl Date {
    /// `YYYY-MM-DD`.
    pub fn iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

/// Days in `month` of `year`.
pub fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if leap(year) => 29,
        2 => 28,
        _ => 31,
    }
}

const EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const FR: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];
const DE: [&str; 12] = [
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
];
const ES: [&str; 12] = [
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
];
/// English abbreviations the rules know (`Sept` besides `Sep`).
const EN_ABBR: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The clean formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `7 March 2021`.
    EnglishDayMonth,
    /// `March 7, 2021`.
    EnglishMonthDay,
    /// `07/03/2021`.
    Numeric,
    /// `7 mars 2021`.
    French,
    /// `7. März 2021`.
    German,
    /// `7 de marzo de 2021`.
    Spanish,
}

const FORMATS: [Format; 6] = [
    Format::EnglishDayMonth,
    Format::EnglishMonthDay,
    Format::Numeric,
    Format::French,
    Format::German,
    Format::Spanish,
];

/// How an input departs from its clean format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// The clean format.
    Clean,
    /// Known to the rules: an abbreviated English month (`Mar`, `Sept.`).
    Abbreviated,
    /// Known: all upper or all lower case.
    Case,
    /// Known: a doubled space.
    Spaces,
    /// Unknown to the rules: one letter of the month name replaced.
    Typo,
    /// Unknown: an ordinal day (`7th`, `1st`).
    Ordinal,
    /// Unknown: a two-digit year (`'21`).
    ShortYear,
    /// Unknown: the year first (`2021 March 7`).
    YearFirst,
    /// Unknown: dots in a numeric date (`07.03.2021`).
    DottedNumeric,
}

impl Variant {
    /// The variants the rules know (besides [`Variant::Clean`]).
    pub const KNOWN: [Variant; 3] = [Variant::Abbreviated, Variant::Case, Variant::Spaces];
    /// The variants the rules do not know.
    pub const UNKNOWN: [Variant; 5] = [
        Variant::Typo,
        Variant::Ordinal,
        Variant::ShortYear,
        Variant::YearFirst,
        Variant::DottedNumeric,
    ];

    /// Whether the rule-based pipeline covers it.
    pub fn covered(self) -> bool {
        !Self::UNKNOWN.contains(&self)
    }
}

/// The make-up of a world, fixed in the experiment's config before any run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct World {
    /// Share of inputs in a variant the rules do not know.
    pub unknown_share: f64,
    /// Share of inputs in a variant the rules know.
    pub known_share: f64,
}

impl World {
    /// Every input clean: the rules cover the world completely.
    pub fn clean() -> Self {
        World {
            unknown_share: 0.0,
            known_share: 0.0,
        }
    }

    /// A fifth of the inputs outside the rules' coverage, a fifth in variants they know.
    pub fn messy() -> Self {
        World {
            unknown_share: 0.2,
            known_share: 0.2,
        }
    }
}

/// SplitMix64: a small, seedable generator, deterministic everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// From a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0xD1B5_4A32_D192_ED03)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }
}

/// One pair: the input text, its ISO date, and how the input was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    /// The human-readable date.
    pub input: String,
    /// Its ISO form, the answer.
    pub target: String,
    /// The clean format it came from.
    pub format: Format,
    /// How it departs from it.
    pub variant: Variant,
}

fn random_date(rng: &mut Rng) -> Date {
    let year = 1950 + rng.below(100) as u32;
    let month = 1 + rng.below(12) as u32;
    let day = 1 + rng.below(days_in_month(year, month) as usize) as u32;
    Date { year, month, day }
}

fn month_name(format: Format, month: u32) -> &'static str {
    let i = (month - 1) as usize;
    match format {
        Format::EnglishDayMonth | Format::EnglishMonthDay | Format::Numeric => EN[i],
        Format::French => FR[i],
        Format::German => DE[i],
        Format::Spanish => ES[i],
    }
}

/// Every month word the rules know, lower case, with its month.
fn lexicon() -> Vec<(String, u32)> {
    let mut words = Vec::new();
    for (m, names) in (1..=12).zip(
        EN.iter()
            .zip(FR.iter())
            .zip(DE.iter())
            .zip(ES.iter())
            .zip(EN_ABBR.iter()),
    ) {
        let ((((en, fr), de), es), ab) = names;
        for w in [*en, *fr, *de, *es, *ab] {
            words.push((w.to_lowercase(), m));
        }
    }
    words.push(("sept".into(), 9));
    words
}

/// The clean text of `date` in `format`, with `day`, `month` and `year` as given.
fn render(format: Format, day: &str, month: &str, year: &str, date: &Date) -> String {
    match format {
        Format::EnglishDayMonth | Format::French => format!("{day} {month} {year}"),
        Format::EnglishMonthDay => format!("{month} {day}, {year}"),
        Format::Numeric => format!("{:02}/{:02}/{year}", date.day, date.month),
        Format::German => format!("{day}. {month} {year}"),
        Format::Spanish => format!("{day} de {month} de {year}"),
    }
}

fn ordinal(d: u32) -> String {
    let suffix = match (d % 10, d % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{d}{suffix}")
}

/// The input of `date` in `format` and `variant`. Variants that need a month name
/// (abbreviation, typo) fall back to an English word format when `format` is numeric; variants
/// of the numeric format (dots) turn any format numeric.
fn make(date: &Date, mut format: Format, variant: Variant, rng: &mut Rng) -> String {
    if matches!(
        variant,
        Variant::Abbreviated | Variant::Typo | Variant::Ordinal
    ) && format == Format::Numeric
    {
        format = Format::EnglishDayMonth;
    }
    if variant == Variant::Abbreviated {
        format = if rng.below(2) == 0 {
            Format::EnglishDayMonth
        } else {
            Format::EnglishMonthDay
        };
    }
    let day = date.day.to_string();
    let year = date.year.to_string();
    let month = month_name(format, date.month).to_owned();
    match variant {
        Variant::Clean => render(format, &day, &month, &year, date),
        Variant::Abbreviated => {
            let m = if date.month == 9 && rng.below(2) == 0 {
                "Sept.".to_owned()
            } else {
                format!("{}.", EN_ABBR[(date.month - 1) as usize])
            };
            render(format, &day, &m, &year, date)
        }
        Variant::Case => {
            let s = render(format, &day, &month, &year, date);
            if rng.below(2) == 0 {
                s.to_uppercase()
            } else {
                s.to_lowercase()
            }
        }
        Variant::Spaces => render(format, &day, &month, &year, date).replacen(' ', "  ", 1),
        Variant::Typo => {
            // One letter replaced so that the word is no month word the rules know.
            let words: HashSet<String> = lexicon().into_iter().map(|(w, _)| w).collect();
            let chars: Vec<char> = month.chars().collect();
            let typo = loop {
                let mut c = chars.clone();
                let i = rng.below(c.len());
                c[i] = (b'a' + rng.below(26) as u8) as char;
                let t: String = c.into_iter().collect();
                if !words.contains(&t.to_lowercase()) {
                    break t;
                }
            };
            render(format, &day, &typo, &year, date)
        }
        Variant::Ordinal => render(format, &ordinal(date.day), &month, &year, date),
        Variant::ShortYear => {
            let y = format!("'{:02}", date.year % 100);
            match format {
                Format::Numeric => format!("{:02}/{:02}/{y}", date.day, date.month),
                _ => render(format, &day, &month, &y, date),
            }
        }
        Variant::YearFirst => {
            let m = month_name(
                if format == Format::Numeric {
                    Format::EnglishDayMonth
                } else {
                    format
                },
                date.month,
            );
            format!("{year} {m} {day}")
        }
        Variant::DottedNumeric => format!("{:02}.{:02}.{year}", date.day, date.month),
    }
}

/// One example of `world`, from `rng`.
pub fn sample(world: &World, rng: &mut Rng) -> Example {
    let date = random_date(rng);
    let format = FORMATS[rng.below(FORMATS.len())];
    let u = rng.unit();
    let variant = if u < world.unknown_share {
        Variant::UNKNOWN[rng.below(Variant::UNKNOWN.len())]
    } else if u < world.unknown_share + world.known_share {
        Variant::KNOWN[rng.below(Variant::KNOWN.len())]
    } else {
        Variant::Clean
    };
    Example {
        input: make(&date, format, variant, rng),
        target: date.iso(),
        format,
        variant,
    }
}

/// Training pairs and a held-out test set of one world.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Corpus {
    /// Training pairs.
    pub train: Vec<Example>,
    /// Test pairs; no test input appears among the training inputs.
    pub test: Vec<Example>,
}

impl Corpus {
    /// `train` training and `test` test pairs of `world` from `seed`: the test set is drawn
    /// first (from its own stream), then training pairs whose input is not a test input.
    pub fn generate(world: &World, train: usize, test: usize, seed: u64) -> Corpus {
        let mut test_rng = Rng::new(seed.wrapping_mul(2).wrapping_add(1));
        let test: Vec<Example> = (0..test).map(|_| sample(world, &mut test_rng)).collect();
        let held: HashSet<&str> = test.iter().map(|e| e.input.as_str()).collect();
        let mut rng = Rng::new(seed.wrapping_mul(2));
        let mut out = Vec::with_capacity(train);
        while out.len() < train {
            let e = sample(world, &mut rng);
            if !held.contains(e.input.as_str()) {
                out.push(e);
            }
        }
        Corpus { train: out, test }
    }
}

/// The rule-based pipeline: tokenise, parse with a small grammar, generate the ISO date.
#[derive(Debug, Clone)]
pub struct Rules {
    months: Vec<(String, u32)>,
}

impl Default for Rules {
    fn default() -> Self {
        Self::new()
    }
}

/// A token of the rules' tokeniser.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(String),
    Word(String),
    Slash,
}

impl Rules {
    /// The rules with their lexicon of month words (four languages, English abbreviations).
    pub fn new() -> Self {
        Rules { months: lexicon() }
    }

    fn month(&self, word: &str) -> Option<u32> {
        self.months.iter().find(|(w, _)| w == word).map(|(_, m)| *m)
    }

    /// Stage 1: lower case; digits runs, letter runs and `/`; spaces, `.` and `,` separate.
    fn tokenise(text: &str) -> Vec<Tok> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let flush = |cur: &mut String, out: &mut Vec<Tok>| {
            if !cur.is_empty() {
                let t = std::mem::take(cur);
                out.push(if t.chars().all(|c| c.is_ascii_digit()) {
                    Tok::Num(t)
                } else {
                    Tok::Word(t)
                });
            }
        };
        for c in text.to_lowercase().chars() {
            match c {
                '/' => {
                    flush(&mut cur, &mut out);
                    out.push(Tok::Slash);
                }
                ' ' | '.' | ',' => flush(&mut cur, &mut out),
                c => {
                    let switch = cur
                        .chars()
                        .last()
                        .is_some_and(|l| l.is_ascii_digit() != c.is_ascii_digit());
                    if switch {
                        flush(&mut cur, &mut out);
                    }
                    cur.push(c);
                }
            }
        }
        flush(&mut cur, &mut out);
        out
    }

    /// Stages 2 and 3: the date the grammar finds, as `YYYY-MM-DD`; `None` when no rule
    /// matches (the pipeline then answers nothing, which scores as wrong).
    pub fn translate(&self, text: &str) -> Option<String> {
        let toks: Vec<Tok> = Self::tokenise(text)
            .into_iter()
            .filter(|t| *t != Tok::Word("de".into()))
            .collect();
        let num = |t: &Tok, digits: std::ops::RangeInclusive<usize>| match t {
            Tok::Num(s) if digits.contains(&s.len()) => s.parse::<u32>().ok(),
            _ => None,
        };
        let word = |t: &Tok| match t {
            Tok::Word(w) => self.month(w),
            _ => None,
        };
        let (day, month, year) = match toks.as_slice() {
            // d/m/yyyy
            [d, Tok::Slash, m, Tok::Slash, y] => (num(d, 1..=2)?, num(m, 1..=2)?, num(y, 4..=4)?),
            // d month yyyy (English, French, German, Spanish)
            [d, m, y] if num(d, 1..=2).is_some() => (num(d, 1..=2)?, word(m)?, num(y, 4..=4)?),
            // month d yyyy (English)
            [m, d, y] => (num(d, 1..=2)?, word(m)?, num(y, 4..=4)?),
            _ => return None,
        };
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Date { year, month, day }.iso())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corpus_is_deterministic_by_seed_and_its_test_inputs_are_never_trained_on() {
        let a = Corpus::generate(&World::messy(), 3000, 500, 7);
        let b = Corpus::generate(&World::messy(), 3000, 500, 7);
        assert_eq!(a, b);
        let c = Corpus::generate(&World::messy(), 3000, 500, 8);
        assert_ne!(a.test, c.test);
        let test: HashSet<&str> = a.test.iter().map(|e| e.input.as_str()).collect();
        assert!(a.train.iter().all(|e| !test.contains(e.input.as_str())));
        // Small corpora share inputs often enough that the rejection matters: a numeric date
        // has 36,525 possible inputs.
        let small = Corpus::generate(&World::clean(), 20_000, 2000, 1);
        let held: HashSet<&str> = small.test.iter().map(|e| e.input.as_str()).collect();
        assert!(small.train.iter().all(|e| !held.contains(e.input.as_str())));
    }

    #[test]
    fn the_rules_are_exact_on_the_clean_world_and_on_known_variants_and_fail_on_unknown_ones() {
        let rules = Rules::new();
        let clean = Corpus::generate(&World::clean(), 0, 3000, 3);
        for e in &clean.test {
            assert_eq!(
                rules.translate(&e.input).as_deref(),
                Some(e.target.as_str()),
                "{e:?}"
            );
        }
        let messy = Corpus::generate(&World::messy(), 0, 6000, 4);
        let mut seen = HashSet::new();
        for e in &messy.test {
            seen.insert(e.variant);
            let got = rules.translate(&e.input);
            if e.variant.covered() {
                assert_eq!(got.as_deref(), Some(e.target.as_str()), "{e:?}");
            } else {
                assert_ne!(got.as_deref(), Some(e.target.as_str()), "{e:?}");
            }
        }
        assert_eq!(
            seen.len(),
            1 + Variant::KNOWN.len() + Variant::UNKNOWN.len()
        );
        let uncovered = messy.test.iter().filter(|e| !e.variant.covered()).count() as f64;
        assert!((uncovered / 6000.0 - 0.2).abs() < 0.02, "{uncovered}");
    }

    #[test]
    fn examples_read_as_described() {
        let d = Date {
            year: 2021,
            month: 3,
            day: 7,
        };
        let mut rng = Rng::new(0);
        assert_eq!(
            make(&d, Format::EnglishMonthDay, Variant::Clean, &mut rng),
            "March 7, 2021"
        );
        assert_eq!(
            make(&d, Format::Numeric, Variant::Clean, &mut rng),
            "07/03/2021"
        );
        assert_eq!(
            make(&d, Format::German, Variant::Clean, &mut rng),
            "7. März 2021"
        );
        assert_eq!(
            make(&d, Format::Spanish, Variant::Clean, &mut rng),
            "7 de marzo de 2021"
        );
        assert_eq!(
            make(&d, Format::French, Variant::Ordinal, &mut rng),
            "7th mars 2021"
        );
        assert_eq!(
            make(&d, Format::Numeric, Variant::DottedNumeric, &mut rng),
            "07.03.2021"
        );
        assert_eq!(
            make(&d, Format::French, Variant::ShortYear, &mut rng),
            "7 mars '21"
        );
        assert_eq!(ordinal(1), "1st");
        assert_eq!(ordinal(12), "12th");
        assert_eq!(ordinal(23), "23rd");
        assert_eq!(
            Rules::new().translate("29/02/2021"),
            None,
            "not a leap year"
        );
        assert_eq!(
            Rules::new().translate("29/02/2024").as_deref(),
            Some("2024-02-29")
        );
    }
}
