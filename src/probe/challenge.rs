//! Challenge prompts: a fresh arithmetic question per probe, so a relay that caches or mocks
//! replies cannot pass for a live model. The question varies in operation (+, -, *), in how
//! its numbers are written (digits or English words) and in phrasing, so a mock that adds the
//! two numbers it finds fails most of them.
//!
//! What counts as an answer: the numbers the reply states (full-width digits, thousands
//! separators and leading zeros normalised; `85.5`, `-85` and `0.85` are other numbers), leaving
//! out the question's own operands (a reply may restate the question). Exactly one value must
//! remain, and it must be the answer: "84 or 85" and an error message that happens to contain
//! the answer among other numbers fail. Number words ("eighty-five") count when the reply states
//! no number in digits. A reply that works its way there ("45 - 10 = 35, 35 - 7 = 28. The
//! answer is 28") counts when it ends by giving the answer after `=`, `is`, `equals` or
//! `answer:`, with nothing after it but punctuation or emphasis.

/// One question and the number that answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub question: String,
    pub answer: i64,
    operands: [i64; 2],
}

/// What a stream check (`stream_check_every`) adds to the question: a longer reply, whose
/// stream shows whether it is streamed as it is generated.
pub const COUNT_ASK: &str = " Then count from 1 to 40, separated by spaces.";
/// The count it asks for.
pub const COUNT_TO: u32 = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Subtract,
    Multiply,
}

/// Phrasings per operation; `{a}` and `{b}` are the operands in the order the result is
/// computed (`a - b`, `a * b`). ASCII only: a question may go into a header or a URL.
const PHRASINGS: &[(Op, &str)] = &[
    (Op::Add, "What is {a} + {b}?"),
    (Op::Add, "What is {a} plus {b}?"),
    (Op::Add, "Add {a} and {b}."),
    (Op::Add, "What is the sum of {a} and {b}?"),
    (Op::Subtract, "What is {a} - {b}?"),
    (Op::Subtract, "What is {a} minus {b}?"),
    (Op::Subtract, "Subtract {b} from {a}."),
    (Op::Subtract, "What is left when you take {b} away from {a}?"),
    (Op::Multiply, "What is {a} * {b}?"),
    (Op::Multiply, "What is {a} times {b}?"),
    (Op::Multiply, "Multiply {a} by {b}."),
    (Op::Multiply, "What is the product of {a} and {b}?"),
];

const INSTRUCTION: &str = "Reply with the number only, in digits.";

impl Challenge {
    /// A random question, such as "What is forty-one minus 17? Reply with the number only, in
    /// digits." Operands stay small enough for the smallest model to get right: two-digit sums
    /// and differences, a two-digit number times one digit.
    pub fn random() -> Self {
        let (op, template) = PHRASINGS[fastrand::usize(..PHRASINGS.len())];
        let (a, b) = match op {
            Op::Add => (fastrand::i64(10..100), fastrand::i64(10..100)),
            Op::Subtract => {
                let a = fastrand::i64(30..100);
                // The difference is never an operand (a - b = b when a = 2b).
                let mut b = fastrand::i64(10..a - 5);
                if a == 2 * b {
                    b += 1;
                }
                (a, b)
            }
            Op::Multiply => (fastrand::i64(11..100), fastrand::i64(3..10)),
        };
        Self::new(op, a, b, template, fastrand::u8(..4) == 0)
    }

    /// `a <op> b` phrased by `template`, with the operands in words when `words`.
    pub fn new(op: Op, a: i64, b: i64, template: &str, words: bool) -> Self {
        let show = |n: i64| if words { in_words(n) } else { n.to_string() };
        let question = format!("{} {INSTRUCTION}", template.replace("{a}", &show(a)).replace("{b}", &show(b)));
        let answer = match op {
            Op::Add => a + b,
            Op::Subtract => a - b,
            Op::Multiply => a * b,
        };
        Challenge { question, answer, operands: [a, b] }
    }

    /// "What is {a} + {b}?" in digits.
    pub fn from_operands(a: i64, b: i64) -> Self {
        Self::new(Op::Add, a, b, PHRASINGS[0].1, false)
    }

    /// The same question, asking to count from 1 to 40 after the answer (a stream check).
    pub fn with_count(&self) -> Challenge {
        Challenge { question: format!("{}{COUNT_ASK}", self.question), ..self.clone() }
    }

    /// For a stream check: `text` holds 1 to 40 in order, and the answer besides them.
    pub fn is_answered_with_count(&self, text: &str) -> bool {
        let numbers = numbers_in_digits(&normalize(text));
        let mut counted = vec![false; numbers.len()];
        let mut next = 1u32;
        for (i, n) in numbers.iter().enumerate() {
            if next <= COUNT_TO && *n == f64::from(next) {
                counted[i] = true;
                next += 1;
            }
        }
        next > COUNT_TO && numbers.iter().zip(&counted).any(|(n, c)| !c && *n == self.answer as f64)
    }

    /// Whether `text` answers the question (see the module documentation).
    pub fn is_answered_by(&self, text: &str) -> bool {
        self.stated(text) == Some(self.answer as f64) || concluded(text) == Some(self.answer as f64)
    }

    /// The one value the reply states besides the question's own numbers, if there is one.
    pub fn stated(&self, text: &str) -> Option<f64> {
        let normalized = normalize(text);
        let mut numbers = numbers_in_digits(&normalized);
        if numbers.is_empty() {
            numbers = numbers_in_words(&normalized);
        }
        let mut values: Vec<f64> =
            numbers.into_iter().filter(|n| !self.operands.iter().any(|o| *o as f64 == *n)).collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        match values.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }
}

/// The number a reply ends on, when it is given as a conclusion (`= 28`, `is 28.`, `equals
/// **28**`, `Answer: 28`), not merely listed last (`27 or 28`, `retry after 28`).
fn concluded(text: &str) -> Option<f64> {
    static ENDING: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let ending = ENDING.get_or_init(|| {
        regex::Regex::new(r"(?i)(?:=|\bis|\bequals|\banswer\s*:)[\s*_`]*(-?\d{1,3}(?:,\d{3})*(?:\.\d+)?|-?\d+(?:\.\d+)?)[\s*_`]*[.!]?[\s*_`]*$")
            .expect("a valid pattern")
    });
    let normalized = normalize(text);
    // Only the end matters: a long reply is not scanned whole.
    let mut start = normalized.len().saturating_sub(200);
    while !normalized.is_char_boundary(start) {
        start += 1;
    }
    let tail = &normalized[start..];
    let number = ending.captures(tail)?.get(1)?.as_str().replace(',', "");
    number.parse().ok()
}

/// Full-width digits and signs as ASCII (models answering in CJK contexts use them).
fn normalize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '０'..='９' => char::from_digit(c as u32 - '０' as u32, 10).unwrap_or(c),
            '－' | '−' => '-',
            '．' => '.',
            '，' => ',',
            c => c,
        })
        .collect()
}

/// Every number written in digits: an optional sign (only right before the digits, not after
/// a letter or digit), thousands groups (`9,801`), a decimal part (`85.5`; the `.` that ends a
/// sentence is not one).
fn numbers_in_digits(text: &str) -> Vec<f64> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let negative =
            i > 0 && bytes[i - 1] == b'-' && (i < 2 || !(bytes[i - 2].is_ascii_alphanumeric() || bytes[i - 2] == b'.'));
        let mut digits = String::new();
        while i < bytes.len() {
            if bytes[i].is_ascii_digit() {
                digits.push(bytes[i] as char);
                i += 1;
            } else if bytes[i] == b','
                && bytes.len() >= i + 4
                && bytes[i + 1..i + 4].iter().all(u8::is_ascii_digit)
                && bytes.get(i + 4).is_none_or(|b| !b.is_ascii_digit())
            {
                i += 1;
            } else {
                break;
            }
        }
        if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
            digits.push('.');
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                digits.push(bytes[i] as char);
                i += 1;
            }
        }
        if let Ok(value) = digits.parse::<f64>() {
            out.push(if negative { -value } else { value });
        }
    }
    out
}

const UNITS: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];

/// `n` (0..10,000) in English words: `forty-eight`, `eight hundred ninety-one`.
pub fn in_words(n: i64) -> String {
    let n = n.clamp(0, 9_999) as usize;
    let below_hundred = |n: usize| match n {
        0..=19 => UNITS[n].to_string(),
        _ if n % 10 == 0 => TENS[n / 10].to_string(),
        _ => format!("{}-{}", TENS[n / 10], UNITS[n % 10]),
    };
    let mut parts = Vec::new();
    if n >= 1_000 {
        parts.push(format!("{} thousand", UNITS[n / 1_000]));
    }
    if n % 1_000 >= 100 {
        parts.push(format!("{} hundred", UNITS[n % 1_000 / 100]));
    }
    if n % 100 != 0 || parts.is_empty() {
        parts.push(below_hundred(n % 100));
    }
    parts.join(" ")
}

/// Every number written in English words (`eighty-five`, `Eight hundred and ninety-one`).
fn numbers_in_words(text: &str) -> Vec<f64> {
    #[derive(Clone, Copy, PartialEq)]
    enum Last {
        Unit,
        Ten,
        Scale,
    }
    struct Number {
        total: usize,
        group: usize,
        last: Last,
    }
    let mut out = Vec::new();
    let mut current: Option<Number> = None;
    let lower = text.to_lowercase();
    for word in lower.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()) {
        let unit = UNITS.iter().position(|u| *u == word);
        let ten = TENS.iter().position(|t| !t.is_empty() && *t == word);
        current = match (current.take(), unit, ten, word) {
            // "eighty" + "five", "hundred" + "five": the same number goes on.
            (Some(n), Some(u), _, _) if n.last == Last::Scale || (n.last == Last::Ten && u < 10) => {
                Some(Number { group: n.group.saturating_add(u), last: Last::Unit, ..n })
            }
            (Some(n), None, Some(t), _) if n.last == Last::Scale => {
                Some(Number { group: n.group.saturating_add(t * 10), last: Last::Ten, ..n })
            }
            (Some(n), None, None, "hundred") if n.last != Last::Scale => {
                Some(Number { group: n.group.saturating_mul(100), last: Last::Scale, ..n })
            }
            (Some(n), None, None, "thousand") if n.last != Last::Scale || n.group > 0 => Some(Number {
                total: n.total.saturating_add(n.group.max(1).saturating_mul(1_000)),
                group: 0,
                last: Last::Scale,
            }),
            (Some(n), None, None, "and") if n.last == Last::Scale => Some(n),
            // Anything else ends the number; a unit or a ten may start the next.
            (previous, unit, ten, _) => {
                if let Some(n) = previous {
                    out.push(n.total.saturating_add(n.group) as f64);
                }
                match (unit, ten) {
                    (Some(u), _) => Some(Number { total: 0, group: u, last: Last::Unit }),
                    (None, Some(t)) => Some(Number { total: 0, group: t * 10, last: Last::Ten }),
                    _ => None,
                }
            }
        };
    }
    if let Some(n) = current {
        out.push(n.total.saturating_add(n.group) as f64);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_check_wants_the_answer_and_the_count_in_order() {
        let c = Challenge::from_operands(37, 48);
        assert!(c.with_count().question.ends_with("Then count from 1 to 40, separated by spaces."));
        let count: Vec<String> = (1..=40).map(|n| n.to_string()).collect();
        let count = count.join(" ");
        assert!(c.is_answered_with_count(&format!("85\n{count}")));
        assert!(c.is_answered_with_count(&format!("{count}. The answer is 85.")), "either order");
        assert!(!c.is_answered_with_count(&count), "no answer");
        assert!(!c.is_answered_with_count(&format!("85 {}", count.replace(" 17 ", " "))), "17 is missing");
        assert!(!c.is_answered_with_count("85"), "no count");
        // An answer within 1..40 must be there besides the count.
        let small = Challenge::from_operands(5, 7);
        assert!(small.is_answered_with_count(&format!("12 {count}")));
        assert!(!small.is_answered_with_count(&count));
    }

    #[test]
    fn questions_are_fresh_varied_and_well_formed() {
        let challenges: Vec<Challenge> = (0..400).map(|_| Challenge::random()).collect();
        let distinct: std::collections::HashSet<&str> = challenges.iter().map(|c| c.question.as_str()).collect();
        assert!(distinct.len() > 350, "{} distinct of 400", distinct.len());
        for (op, template) in PHRASINGS {
            let stem = template.split('{').next().unwrap();
            assert!(challenges.iter().any(|c| c.question.starts_with(stem)), "{op:?} {template} never asked");
        }
        for c in &challenges {
            assert!(c.question.ends_with(INSTRUCTION), "{}", c.question);
            assert!(c.question.is_ascii(), "{}", c.question);
            assert!(c.answer > 0 && !c.operands.contains(&c.answer), "{c:?}");
        }
        // Words for the operands in some of them.
        assert!(challenges.iter().any(|c| !c.question.chars().any(|ch| ch.is_ascii_digit())));
    }

    /// A mock that finds the two numbers in the question and adds them fails most questions.
    #[test]
    fn a_mock_that_adds_what_it_finds_fails() {
        let passed = (0..400)
            .filter(|_| {
                let c = Challenge::random();
                let numbers = numbers_in_digits(&c.question);
                numbers.len() == 2 && c.is_answered_by(&((numbers[0] + numbers[1]) as i64).to_string())
            })
            .count();
        assert!(passed < 150, "the adding mock passed {passed} of 400");
    }

    #[test]
    fn what_an_answer_is() {
        let c = Challenge::from_operands(37, 48);
        let rows = [
            ("85", true),
            ("85.", true),
            (" The answer is 85\n", true),
            ("**85**", true),
            ("37 + 48 = 85", true),
            ("Thirty-seven plus forty-eight is 85.", true),
            ("085", true),
            ("８５", true),
            ("85.0", true),
            ("eighty-five", true),
            ("Eighty five.", true),
            ("85 (eighty-five)", true),
            ("850", false),
            ("185", false),
            ("8 5", false),
            ("84 or 85", false),
            ("85 or 86", false),
            ("85.5", false),
            ("-85", false),
            ("0.85", false),
            ("Error 429: at most 85 requests per 60 s", false),
            ("", false),
            ("42", false),
            ("37", false),
            ("37 + 48", false),
            // Working shown, then a conclusion.
            ("37 + 40 = 77, 77 + 8 = 85. The answer is 85.", true),
            ("37 + 40 = 77, 77 + 8 = 85", true),
            ("Step by step: 30 + 40 = 70 and 7 + 8 = 15, so the answer is **85**", true),
            ("Answer: 85", true),
            ("37 + 40 = 77, 77 + 8 = 86", false),
            ("The answer is 85 or 86", false),
            ("Error 429: at most 60 requests per minute; retry after 85", false),
            ("The answer is 85. Or maybe 86.", false),
        ];
        for (text, expected) in rows {
            assert_eq!(c.is_answered_by(text), expected, "{text:?}");
        }
        let product = Challenge::new(Op::Multiply, 99, 9, "What is {a} * {b}?", true);
        assert_eq!(product.question, "What is ninety-nine * nine? Reply with the number only, in digits.");
        assert!(product.is_answered_by("891") && product.is_answered_by("eight hundred and ninety-one"));
        let thousands = Challenge::new(Op::Multiply, 99, 99, "What is {a} * {b}?", false);
        assert!(thousands.is_answered_by("9,801") && thousands.is_answered_by("9801"));
        assert!(!thousands.is_answered_by("9,801, 9,802"));
        let difference = Challenge::new(Op::Subtract, 85, 37, "Subtract {b} from {a}.", false);
        assert!(difference.is_answered_by("85 - 37 = 48") && !difference.is_answered_by("-48"));
        // A sign written apart from its number: "-37" is read as minus 37, not the operand.
        let steps = Challenge::new(Op::Subtract, 45, 17, "What is {a} - {b}?", false);
        assert!(steps.is_answered_by("45 -17 = 28"));
        assert!(steps.is_answered_by("45 - 10 = 35, 35 - 7 = 28. The answer is 28"));
    }

    #[test]
    fn numbers_in_words_table() {
        for n in [0, 7, 13, 20, 48, 99, 100, 101, 891, 1_000, 9_801] {
            assert_eq!(numbers_in_words(&in_words(n)), vec![n as f64], "{n}: {}", in_words(n));
        }
        assert_eq!(numbers_in_words("one two"), vec![1.0, 2.0]);
        assert_eq!(numbers_in_words("twenty thirty"), vec![20.0, 30.0]);
        assert_eq!(numbers_in_words("twenty twelve"), vec![20.0, 12.0]);
        assert_eq!(numbers_in_words("no numbers here"), Vec::<f64>::new());
        // However long a run of scale words, the sum never overflows (it saturates).
        let long = "nine hundred ninety nine thousand ".repeat(50_000);
        assert_eq!(numbers_in_words(&long).len(), 1);
    }
}
