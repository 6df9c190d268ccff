//! What a prediction says ([`Label`]), its place in DeepFaune's label list, and its name in each
//! language.

use crate::manifest::classifier::LabelNames;

/// What a prediction says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    /// An animal class (index into the classifier's classes).
    Class(usize),
    /// A bird group from the bird head (index into its groups).
    BirdGroup(usize),
    /// People, no animal.
    Human,
    /// Vehicles, no animal.
    Vehicle,
    /// Nothing detected.
    Empty,
    /// Below the threshold.
    Undefined,
}

impl Label {
    /// The label's index in DeepFaune's label list: classes `0..n`, then bird groups `n..n+g`,
    /// then human `n+g`, vehicle `n+g+1`, empty `n+g+2`, undefined `n+g+3`.
    ///
    /// ```
    /// use deepfaune_rs::sequence::Label;
    /// assert_eq!(Label::Human.index(38, 0), 38);
    /// assert_eq!(Label::BirdGroup(2).index(38, 8), 40);
    /// assert_eq!(Label::from_index(41, 38, 0), Some(Label::Undefined));
    /// ```
    pub fn index(self, n_classes: usize, n_groups: usize) -> usize {
        let base = n_classes + n_groups;
        match self {
            Label::Class(i) => i,
            Label::BirdGroup(j) => n_classes + j,
            Label::Human => base,
            Label::Vehicle => base + 1,
            Label::Empty => base + 2,
            Label::Undefined => base + 3,
        }
    }

    /// The inverse of [`Label::index`]; `None` past the end.
    pub fn from_index(index: usize, n_classes: usize, n_groups: usize) -> Option<Label> {
        let base = n_classes + n_groups;
        Some(match index {
            i if i < n_classes => Label::Class(i),
            i if i < base => Label::BirdGroup(i - n_classes),
            i if i == base => Label::Human,
            i if i == base + 1 => Label::Vehicle,
            i if i == base + 2 => Label::Empty,
            i if i == base + 3 => Label::Undefined,
            _ => return None,
        })
    }

    /// The label as DeepFaune prints it in one language. With the bird head on, DeepFaune calls
    /// the plain `bird` class "bird undefined" ("oiseau indéfini") and a group "bird passerine"
    /// ("oiseau passereau"); otherwise `bird` is just "bird". Indices out of range print as
    /// `undefined`.
    ///
    /// ```
    /// use deepfaune_rs::manifest::classifier::builtin_classifier;
    /// use deepfaune_rs::sequence::Label;
    /// let m = builtin_classifier("deepfaune-v14").unwrap();
    /// let fr = m.names("fr").unwrap();
    /// assert_eq!(Label::Class(20).text(&fr, false), "loup");
    /// assert_eq!(Label::Class(28).text(&fr, true), "oiseau indéfini");
    /// assert_eq!(Label::BirdGroup(5).text(&fr, true), "oiseau passereau");
    /// assert_eq!(Label::Empty.text(&fr, false), "vide");
    /// ```
    pub fn text(self, names: &LabelNames<'_>, bird_head: bool) -> String {
        let undefined = names.undefined.to_string();
        match self {
            Label::Class(i) => match names.classes.get(i) {
                Some(c) if bird_head && names.bird_class == Some(i) => {
                    format!("{c} {}", names.undefined)
                }
                Some(c) => c.clone(),
                None => undefined,
            },
            Label::BirdGroup(j) => {
                let bird = names.bird_class.and_then(|b| names.classes.get(b));
                match (bird, names.bird_groups.and_then(|g| g.get(j))) {
                    (Some(b), Some(g)) => format!("{b} {g}"),
                    _ => undefined,
                }
            }
            Label::Human => names.human.to_string(),
            Label::Vehicle => names.vehicle.to_string(),
            Label::Empty => names.empty.to_string(),
            Label::Undefined => undefined,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_indices_round_trip() {
        for i in 0..50 {
            let l = Label::from_index(i, 38, 8).unwrap();
            assert_eq!(l.index(38, 8), i);
        }
        assert_eq!(Label::from_index(50, 38, 8), None);
        assert_eq!(Label::from_index(38, 38, 0), Some(Label::Human));
    }

    #[test]
    fn text_in_every_language_and_out_of_range() {
        use crate::manifest::classifier::builtin_classifier;
        let v14 = builtin_classifier("deepfaune-v14").unwrap();
        let es = v14.names("es").unwrap();
        assert_eq!(Label::Class(37).text(&es, false), "vaca");
        assert_eq!(Label::Class(28).text(&es, true), "ave indefinido");
        assert_eq!(Label::BirdGroup(7).text(&es, true), "ave rapaz");
        assert_eq!(Label::Vehicle.text(&es, false), "vehículo");
        assert_eq!(
            Label::Class(38).text(&es, false),
            "indefinido",
            "out of range prints undefined"
        );
        // v1.3 has no bird head: a bird group cannot be named.
        let v13 = builtin_classifier("deepfaune-v13").unwrap();
        let it = v13.names("it").unwrap();
        assert_eq!(Label::BirdGroup(0).text(&it, true), "indeterminato");
        assert_eq!(Label::Human.text(&it, false), "umano");
    }

    #[test]
    fn v15_labels_in_the_new_languages() {
        use crate::manifest::classifier::builtin_classifier;
        let v15 = builtin_classifier("deepfaune-v15").unwrap();
        // deepfaune-1.5.md 3.2: with the bird head, plain `bird` is "<bird> <undefined>".
        for (lang, bird_undefined, group, empty) in [
            ("no", "fugl udefinert", "fugl rovfugler", "tom"),
            ("se", "fågel odefinierad", "fågel rovfåglar", "tom"),
            ("sv", "fågel odefinierad", "fågel rovfåglar", "tom"),
            ("pt", "ave indefinido", "ave rapinante", "vazio"),
        ] {
            let names = v15.names(lang).unwrap();
            assert_eq!(
                Label::Class(29).text(&names, true),
                bird_undefined,
                "{lang}"
            );
            assert_eq!(Label::BirdGroup(7).text(&names, true), group, "{lang}");
            assert_eq!(Label::Empty.text(&names, false), empty, "{lang}");
        }
        let en = v15.names("en").unwrap();
        assert_eq!(Label::Class(23).text(&en, false), "mongoose");
        assert_eq!(Label::Class(36).text(&en, true), "arctic fox");
        assert_eq!(Label::Class(29).text(&en, false), "bird");
    }
}
