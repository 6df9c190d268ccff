//! Which labels a results table speaks: a table read without its run (DeepFaune's own CSV/XLSX,
//! or ours without a checkpoint) names no classifier, so the review page finds the built-in
//! classifier, language and bird-head wording whose labels name every text of the table, and
//! offers those labels for relabelling.

use crate::manifest::classifier::{builtin_classifiers, ClassifierManifest};
use crate::sequence::Label;

/// Every label a prediction of `m` can take in `language` (bird groups only with the bird
/// head), as the run prints them; `None` when `m` has no such language.
pub fn label_texts(m: &ClassifierManifest, language: &str, bird_head: bool) -> Option<Vec<String>> {
    let (n, g) = (m.num_classes(), m.num_groups());
    let names = m.names(language)?;
    Some(
        (0..n + g + 4)
            .filter_map(|i| Label::from_index(i, n, g))
            .filter(|l| bird_head || !matches!(l, Label::BirdGroup(_)))
            .map(|l| l.text(&names, bird_head))
            .collect(),
    )
}

/// The labels of a table: the classifier, language and wording that name all its texts.
#[derive(Debug, Clone, PartialEq)]
pub struct TableLabels {
    /// Built-in classifier id.
    pub classifier: String,
    /// The language of the labels.
    pub language: String,
    /// Whether the labels are worded as with the bird head (`bird undefined`, bird groups).
    pub bird_head: bool,
    /// Every label of that classifier in that language ([`label_texts`]).
    pub labels: Vec<String>,
    /// `[empty, human, vehicle, undefined]` in that language.
    pub special: [String; 4],
}

/// The first built-in classifier (newest first), language and bird-head wording whose labels
/// contain every one of `texts` (empty texts ignored); `None` when none does (a custom model).
pub fn table_labels<S: AsRef<str>>(texts: &[S]) -> Option<TableLabels> {
    let wanted: std::collections::BTreeSet<&str> = texts
        .iter()
        .map(|t| t.as_ref())
        .filter(|t| !t.is_empty())
        .collect();
    for m in builtin_classifiers() {
        for lang in m.languages() {
            for bird in [false, true] {
                if bird && m.bird_head.is_none() {
                    continue;
                }
                let Some(labels) = label_texts(&m, lang, bird) else {
                    continue;
                };
                if !wanted.iter().all(|t| labels.iter().any(|l| l == t)) {
                    continue;
                }
                let names = m.names(lang)?;
                return Some(TableLabels {
                    classifier: m.id.clone(),
                    language: lang.to_string(),
                    bird_head: bird,
                    labels,
                    special: [
                        names.empty.to_string(),
                        names.human.to_string(),
                        names.vehicle.to_string(),
                        names.undefined.to_string(),
                    ],
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::classifier::builtin_classifier;

    #[test]
    fn finds_the_classifier_and_language_of_a_table() {
        // French labels of 1.5 (written out: the table DeepFaune's French GUI makes).
        let t = table_labels(&["chamois", "vide", "humain", "indéfini", ""]).unwrap();
        assert_eq!(
            (t.classifier.as_str(), t.language.as_str()),
            ("deepfaune-v15", "fr")
        );
        assert_eq!(t.special[0], "vide");
        assert!(t.labels.iter().any(|l| l == "chamois") && !t.bird_head);
        let en = table_labels(&["red deer", "empty"]).unwrap();
        assert_eq!(en.language, "en");
        let v15 = builtin_classifier("deepfaune-v15").unwrap();
        assert_eq!(Some(en.labels), label_texts(&v15, "en", false));
        assert_eq!(table_labels(&["unicorn"]), None);
    }
}
