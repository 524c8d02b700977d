//! Challenge prompts: a fresh arithmetic question per probe, so a relay that caches or mocks
//! replies cannot pass for a live model.

/// One question and the number that answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub question: String,
    pub answer: u64,
}

impl Challenge {
    /// A random question such as "What is 37 + 48? Answer with the number only."
    pub fn random() -> Self {
        Self::from_operands(fastrand::u64(10..100), fastrand::u64(10..100))
    }

    pub fn from_operands(a: u64, b: u64) -> Self {
        Challenge { question: format!("What is {a} + {b}? Answer with the number only."), answer: a + b }
    }

    /// Whether `text` states the answer as a number of its own (`85`, `85.`, `The answer is 85`;
    /// not `850` or `185`).
    pub fn is_answered_by(&self, text: &str) -> bool {
        let wanted = self.answer.to_string();
        text.split(|c: char| !c.is_ascii_digit()).any(|number| number == wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_are_fresh_and_well_formed() {
        let questions: std::collections::HashSet<String> = (0..50).map(|_| Challenge::random().question).collect();
        assert!(questions.len() > 40, "{} distinct of 50", questions.len());
        let c = Challenge::random();
        let numbers: Vec<u64> =
            c.question.split(|ch: char| !ch.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
        assert_eq!(numbers.len(), 2);
        assert_eq!(numbers[0] + numbers[1], c.answer);
        assert!(c.question.ends_with("Answer with the number only."));
    }

    #[test]
    fn answers_are_checked_as_whole_numbers() {
        let c = Challenge::from_operands(37, 48);
        let rows = [
            ("85", true),
            ("85.", true),
            (" The answer is 85\n", true),
            ("**85**", true),
            ("37 + 48 = 85", true),
            ("850", false),
            ("185", false),
            ("8 5", false),
            ("eighty-five", false),
            ("", false),
            ("42", false),
        ];
        for (text, expected) in rows {
            assert_eq!(c.is_answered_by(text), expected, "{text:?}");
        }
    }
}
