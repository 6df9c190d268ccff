//! Classifier manifests: DeepFaune's species classifiers (v1.5, v1.4, v1.3, v1.1) and test models.
//!
//! One TOML file per model under `models/`, parsed raw then validated, like detector manifests.
//! The class list (model output order) comes in up to eight languages (`en`, `fr`, `it`, `de`,
//! `es`, and since DeepFaune 1.5 `no`, `se`, `pt`); `en` and `fr` are required, the others may be
//! absent when DeepFaune never shipped them (v1.1 has no Spanish list, v1.4 no Norwegian).
//! The softmax temperatures of DeepFaune's averaging are manifest data too (they changed in 1.5).
//!
//! ```
//! use deepfaune_rs::manifest::classifier::builtin_classifier;
//! let m = builtin_classifier("deepfaune-v15").unwrap();
//! assert_eq!(m.num_classes(), 40);
//! let fr = m.names("fr").unwrap();
//! assert_eq!(fr.classes[23], "mangouste");
//! assert_eq!(fr.undefined, "indéfini");
//! assert_eq!(m.names("sv").unwrap().undefined, "odefinierad"); // `sv` = DeepFaune's `se`
//! assert_eq!(m.bird_head.as_ref().unwrap().num_groups(), 8);
//! assert_eq!(m.temperatures().sequence, 1.10);
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{
    builtin_text, builtins, parse_manifest, read_manifest, ManifestHeader, ModelKind, ResizeMethod,
    WeightsFile,
};
use crate::error::ModelError;

/// The languages DeepFaune ships, with DeepFaune's codes (Swedish is `se`), in its order.
pub const LANGUAGES: [&str; 8] = ["en", "fr", "it", "de", "es", "no", "se", "pt"];

/// Other codes accepted for a language: ISO 639-1 `sv` for DeepFaune's Swedish `se`.
pub const LANGUAGE_ALIASES: [(&str, &str); 1] = [("sv", "se")];

/// The classifier used when none is named: DeepFaune's current release.
pub const DEFAULT_CLASSIFIER: &str = "deepfaune-v15";

/// DeepFaune's code for a language code: an alias becomes its code (`sv` -> `se`), anything
/// else is returned unchanged.
///
/// ```
/// use deepfaune_rs::manifest::classifier::canonical_language;
/// assert_eq!((canonical_language("sv"), canonical_language("no")), ("se", "no"));
/// ```
pub fn canonical_language(lang: &str) -> &str {
    LANGUAGE_ALIASES
        .iter()
        .find(|(alias, _)| *alias == lang)
        .map_or(lang, |(_, code)| code)
}

/// How the crop is brought to the input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fit {
    /// Both sides resized to `size` (aspect ratio not kept), as DeepFaune does.
    Squash,
}

/// Input facts of a classifier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierInput {
    /// Side of the square input, in pixels.
    pub size: u32,
    /// Resampler.
    pub resize: ResizeMethod,
    /// How the crop is fitted.
    pub fit: Fit,
    /// Per-channel mean (RGB, on 0-1 values).
    pub mean: [f32; 3],
    /// Per-channel standard deviation.
    pub std: [f32; 3],
    /// Name of the input tensor.
    pub name: String,
}

/// Output tensor names of a classifier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierOutput {
    /// Raw logits `[b, classes]`.
    pub logits: String,
    /// The embedding `[b, embedding_dim]` (the CLS token for DeepFaune's ViT).
    pub embedding: String,
}

/// Post-processing of a classifier: the default threshold and DeepFaune's temperatures.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierPostprocess {
    /// Scores below it give `undefined`.
    pub threshold: f32,
    /// Divides the mean logits when one image (or frame) of the group shows an animal; also
    /// every per-image ("base") score.
    pub temperature_image: f32,
    /// Divides the mean logits when several images (or frames) show an animal.
    pub temperature_sequence: f32,
    /// Divides the bird head's mean logits; required with a bird head, refused without one.
    #[serde(default)]
    pub temperature_bird: Option<f32>,
}

/// The temperatures of DeepFaune's logit averaging (`__averageLogitInSequence`), from the
/// manifest: `softmax(mean_logits / t)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Temperatures {
    /// One animal image in the group (and every per-image score).
    pub image: f32,
    /// Two or more animal images in the group.
    pub sequence: f32,
    /// The bird head's groups (`None` when the model has no bird head).
    pub bird: Option<f32>,
}

/// DeepFaune 1.4's optional bird head: a small network on the embedding giving 8 bird groups.
/// Its weights file is a [`WeightsFile`] (read as `b.file`, `b.download()`), as a manifest's.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "toml::Table")]
pub struct BirdHead {
    /// The weights file (`sha256` empty when the user exports it) and its download.
    pub weights: WeightsFile,
    /// Name of the input tensor (fed with the classifier's embedding).
    pub input: String,
    /// Name of the output tensor (raw logits `[b, groups]`).
    pub output: String,
    /// Group names by language, in the head's output order.
    pub groups: BTreeMap<String, Vec<String>>,
}

/// The bird head's own keys (beside its weights').
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BirdHeadTables {
    input: String,
    output: String,
    groups: BTreeMap<String, Vec<String>>,
}

impl TryFrom<toml::Table> for BirdHead {
    type Error = String;
    fn try_from(mut t: toml::Table) -> Result<Self, String> {
        let weights = WeightsFile::take_from(&mut t).map_err(|r| format!("bird_head: {r}"))?;
        let own: BirdHeadTables = toml::Value::Table(t)
            .try_into()
            .map_err(|e: toml::de::Error| format!("bird_head: {e}"))?;
        Ok(BirdHead {
            weights,
            input: own.input,
            output: own.output,
            groups: own.groups,
        })
    }
}

impl std::ops::Deref for BirdHead {
    type Target = WeightsFile;
    fn deref(&self) -> &WeightsFile {
        &self.weights
    }
}

impl BirdHead {
    /// Number of bird groups.
    pub fn num_groups(&self) -> usize {
        self.groups.get("en").map_or(0, Vec::len)
    }
}

/// A classifier manifest: the [`ManifestHeader`] and the classifier's tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierManifest {
    /// The fields every kind shares (`id`, `version`, `file`, `sha256`, `url`, ...; read as
    /// `m.id`); `version` is required here (DeepFaune's release, or `test`).
    #[serde(skip)]
    pub header: ManifestHeader,
    /// The network (timm name for DeepFaune's).
    pub architecture: String,
    /// Width of the embedding output.
    pub embedding_dim: usize,
    /// Input facts.
    pub input: ClassifierInput,
    /// Output tensor names.
    pub output: ClassifierOutput,
    /// Post-processing defaults.
    pub postprocess: ClassifierPostprocess,
    /// Class names by language, in the model's output order.
    pub classes: BTreeMap<String, Vec<String>>,
    /// `[human, vehicle, empty, undefined]` by language.
    pub labels: BTreeMap<String, [String; 4]>,
    /// The optional bird head.
    #[serde(default)]
    pub bird_head: Option<BirdHead>,
    /// English class (or bird group, or `human`) -> scientific name, where one is clear.
    #[serde(default)]
    pub scientific_names: BTreeMap<String, String>,
    /// Where the manifest was read from (None for built-ins).
    #[serde(skip)]
    pub source_dir: Option<PathBuf>,
}

/// All names needed to print a prediction in one language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelNames<'a> {
    /// Animal classes, in model order.
    pub classes: &'a [String],
    /// Bird groups, when the manifest has a bird head with this language.
    pub bird_groups: Option<&'a [String]>,
    /// `human` in this language.
    pub human: &'a str,
    /// `vehicle` in this language.
    pub vehicle: &'a str,
    /// `empty` in this language.
    pub empty: &'a str,
    /// `undefined` in this language.
    pub undefined: &'a str,
    /// Index of the `bird` class (English name `bird`), if the model has one.
    pub bird_class: Option<usize>,
}

impl ClassifierManifest {
    /// Parses and validates a manifest from TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ModelError> {
        let bad = |reason: String| ModelError::Manifest {
            path: origin.to_string(),
            reason,
        };
        let (header, mut m): (_, ClassifierManifest) =
            parse_manifest(text, origin, ModelKind::Classifier)?;
        m.header = header;
        if m.version.is_empty() {
            return Err(bad(
                "version is required (DeepFaune's release, or 'test')".into()
            ));
        }
        if m.input.size < 16 || m.input.size > 4096 {
            return Err(bad(format!(
                "input.size {} out of range 16..4096",
                m.input.size
            )));
        }
        if m.input.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
            || m.input.mean.iter().any(|v| !v.is_finite())
        {
            return Err(bad(
                "input.mean must be finite and input.std positive".into()
            ));
        }
        let p = &m.postprocess;
        if !(0.0..=1.0).contains(&p.threshold) {
            return Err(bad("postprocess.threshold must be within 0..1".into()));
        }
        let temperatures = [p.temperature_image, p.temperature_sequence];
        if temperatures
            .into_iter()
            .chain(p.temperature_bird)
            .any(|t| !(t.is_finite() && t > 0.0))
        {
            return Err(bad("postprocess temperatures must be positive".into()));
        }
        match (&m.bird_head, p.temperature_bird) {
            (Some(_), None) => {
                return Err(bad(
                    "postprocess.temperature_bird is required with a bird head".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(bad(
                    "postprocess.temperature_bird given but there is no bird head".into(),
                ))
            }
            _ => {}
        }
        if m.embedding_dim == 0 {
            return Err(bad("embedding_dim must be positive".into()));
        }
        let n = check_names(&m.classes, "classes").map_err(bad)?;
        for lang in m.classes.keys() {
            if !m.labels.contains_key(lang) {
                return Err(bad(format!("labels has no '{lang}' entry")));
            }
        }
        if let Some(b) = &m.bird_head {
            check_names(&b.groups, "bird_head.groups").map_err(bad)?;
            if !m.classes["en"].iter().any(|c| c == "bird") {
                return Err(bad("a bird head needs a class named 'bird'".into()));
            }
        }
        let known = |k: &str| {
            m.classes["en"].iter().any(|c| c == k)
                || k == "human"
                || k == "vehicle"
                || m.bird_head
                    .as_ref()
                    .is_some_and(|b| b.groups["en"].iter().any(|g| g == k))
        };
        if let Some(k) = m.scientific_names.keys().find(|k| !known(k)) {
            return Err(bad(format!(
                "scientific_names has '{k}', which is no English class of this model"
            )));
        }
        debug_assert_eq!(n, m.num_classes());
        Ok(m)
    }

    /// Reads a manifest file.
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        read_manifest(path, Self::from_toml, |m, dir| m.source_dir = dir)
    }

    /// DeepFaune's temperatures for this model.
    pub fn temperatures(&self) -> Temperatures {
        let p = &self.postprocess;
        Temperatures {
            image: p.temperature_image,
            sequence: p.temperature_sequence,
            bird: p.temperature_bird,
        }
    }

    /// Number of animal classes (the width of the logits).
    pub fn num_classes(&self) -> usize {
        self.classes.get("en").map_or(0, Vec::len)
    }

    /// Number of bird groups of the optional bird head (0 without one): with
    /// [`num_classes`](Self::num_classes), the layout of [`crate::sequence::Label::index`].
    pub fn num_groups(&self) -> usize {
        self.bird_head.as_ref().map_or(0, BirdHead::num_groups)
    }

    /// Languages this manifest has names for, in DeepFaune's order.
    pub fn languages(&self) -> Vec<&'static str> {
        LANGUAGES
            .into_iter()
            .filter(|l| self.classes.contains_key(*l))
            .collect()
    }

    /// The names of every label in `lang` (one of [`LANGUAGES`], or an alias such as `sv`);
    /// `None` when the manifest has no list in that language.
    pub fn names(&self, lang: &str) -> Option<LabelNames<'_>> {
        let lang = canonical_language(lang);
        let classes = self.classes.get(lang)?;
        let [human, vehicle, empty, undefined] = self.labels.get(lang)?;
        Some(LabelNames {
            classes,
            bird_groups: self
                .bird_head
                .as_ref()
                .and_then(|b| b.groups.get(lang))
                .map(Vec::as_slice),
            human,
            vehicle,
            empty,
            undefined,
            bird_class: self.classes["en"].iter().position(|c| c == "bird"),
        })
    }

    /// Indices of the classes named in `names` (any language of this manifest, case-sensitive);
    /// the names that match no class are returned as errors.
    ///
    /// ```
    /// let m = deepfaune_rs::manifest::classifier::builtin_classifier("deepfaune-v14").unwrap();
    /// assert_eq!(m.class_indices(&["wolf", "loup", "lynx"]), Ok(vec![20, 22]));
    /// assert!(m.class_indices(&["dragon"]).is_err());
    /// ```
    pub fn class_indices<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<usize>, Vec<String>> {
        let mut found = Vec::new();
        let mut unknown = Vec::new();
        for name in names {
            let name = name.as_ref();
            match self
                .classes
                .values()
                .find_map(|list| list.iter().position(|c| c == name))
            {
                Some(i) => found.push(i),
                None => unknown.push(name.to_string()),
            }
        }
        if !unknown.is_empty() {
            return Err(unknown);
        }
        found.sort_unstable();
        found.dedup();
        Ok(found)
    }
}

/// Checks a by-language name table: `en` and `fr` present, known languages only, equal lengths,
/// no empty or duplicate names. Returns the length.
fn check_names(table: &BTreeMap<String, Vec<String>>, what: &str) -> Result<usize, String> {
    let en = table
        .get("en")
        .ok_or_else(|| format!("{what} has no 'en' list"))?;
    if !table.contains_key("fr") {
        return Err(format!("{what} has no 'fr' list"));
    }
    if en.is_empty() {
        return Err(format!("{what}.en is empty"));
    }
    for (lang, list) in table {
        if !LANGUAGES.contains(&lang.as_str()) {
            return Err(format!(
                "{what}: unknown language '{lang}' (expected one of {LANGUAGES:?})"
            ));
        }
        if list.len() != en.len() {
            return Err(format!(
                "{what}.{lang} has {} names, {what}.en has {}",
                list.len(),
                en.len()
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for name in list {
            if name.trim().is_empty() || !seen.insert(name) {
                return Err(format!("{what}.{lang}: empty or duplicate name '{name}'"));
            }
        }
    }
    Ok(en.len())
}

/// All built-in classifier manifests, newest first (the listing order).
pub fn builtin_classifiers() -> Vec<ClassifierManifest> {
    builtins(ModelKind::Classifier)
        .filter_map(|b| ClassifierManifest::from_toml(b.text, b.file).ok())
        .collect()
}

/// A built-in classifier manifest by id (case-insensitive); unknown, an error that lists the
/// classifiers.
pub fn builtin_classifier(id: &str) -> Result<ClassifierManifest, ModelError> {
    let b = builtin_text(id, &[ModelKind::Classifier])?;
    ClassifierManifest::from_toml(b.text, b.file)
}

super::header_deref!(ClassifierManifest);

/// Where a classifier's weights are expected: next to the manifest file, else in
/// [`super::model_dir`].
pub fn classifier_weights_path(m: &ClassifierManifest) -> PathBuf {
    super::weights_beside(m.source_dir.as_deref(), &m.file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
    }

    #[test]
    fn builtins_parse_with_deepfaune_sizes() {
        let all = builtin_classifiers();
        assert_eq!(
            all.len(),
            builtins(ModelKind::Classifier).count(),
            "every built-in classifier manifest must parse"
        );
        let sizes: Vec<(String, usize)> = all
            .iter()
            .map(|m| (m.id.clone(), m.num_classes()))
            .collect();
        assert_eq!(
            sizes,
            [
                ("deepfaune-v15".to_string(), 40),
                ("deepfaune-v14".to_string(), 38),
                ("deepfaune-v13".to_string(), 34),
                ("deepfaune-v11".to_string(), 26)
            ],
            "newest first: the listing order"
        );
        assert_eq!(all[0].id, DEFAULT_CLASSIFIER);
        let v15 = builtin_classifier("DEEPFAUNE-V15").unwrap();
        assert_eq!(v15.languages(), LANGUAGES);
        assert_eq!((v15.input.size, v15.embedding_dim), (224, 1024));
        assert_eq!(v15.architecture, "vit_large_patch16_dinov3.lvd1689m");
        let v14 = builtin_classifier("DEEPFAUNE-V14").unwrap();
        assert_eq!(v14.languages(), ["en", "fr", "it", "de", "es"]);
        assert!(v14.names("no").is_none() && v14.names("sv").is_none());
        assert_eq!((v14.input.size, v14.postprocess.threshold), (182, 0.8));
        let v11 = builtin_classifier("deepfaune-v11").unwrap();
        assert_eq!(
            v11.languages(),
            ["en", "fr", "it", "de"],
            "DeepFaune 1.1 has no Spanish list"
        );
        assert!(v11.names("es").is_none());
    }

    #[test]
    fn class_order_is_alphabetical_by_french_name() {
        // DeepFaune's rule; byte order works here because the accents only appear after the first
        // differing letter.
        for m in builtin_classifiers() {
            let fr = &m.classes["fr"];
            assert!(fr.windows(2).all(|w| w[0] < w[1]), "{}: {fr:?}", m.id);
        }
    }

    #[test]
    fn v14_english_names_match_the_spec() {
        let spec = "bison, badger, ibex, beaver, red deer, golden jackal, chamois, cat, goat, roe deer, dog, \
                    raccoon dog, fallow deer, squirrel, moose, equid, genet, wolverine, hedgehog, lagomorph, wolf, \
                    otter, lynx, marmot, micromammal, mouflon, sheep, mustelid, bird, bear, porcupine, nutria, \
                    muskrat, raccoon, fox, reindeer, wild boar, cow";
        let spec: Vec<&str> = spec.split(',').map(str::trim).collect();
        let m = builtin_classifier("deepfaune-v14").unwrap();
        assert_eq!(m.classes["en"], spec);
        let names = m.names("de").unwrap();
        assert_eq!(
            (names.human, names.vehicle, names.empty, names.undefined),
            ("Mensch", "Fahrzeug", "Leer", "Undefiniert")
        );
        assert_eq!(names.bird_class, Some(28));
        assert_eq!(names.bird_groups.unwrap()[7], "Greifvögel");
    }

    #[test]
    fn v15_adds_mongoose_and_arctic_fox_and_moves_bird_to_29() {
        let v14 = builtin_classifier("deepfaune-v14").unwrap();
        let v15 = builtin_classifier("deepfaune-v15").unwrap();
        // deepfaune-1.5.md 1.7: 0-22 keep their index, 23-34 move to 24-35, 35-37 to 37-39.
        for (i, c) in v14.classes["en"].iter().enumerate() {
            let j = match i {
                0..=22 => i,
                23..=34 => i + 1,
                _ => i + 2,
            };
            for lang in ["en", "fr", "it", "de", "es"] {
                assert_eq!(v15.classes[lang][j], v14.classes[lang][i], "{lang} {c}");
            }
        }
        let en = &v15.classes["en"];
        assert_eq!(
            (en[23].as_str(), en[36].as_str()),
            ("mongoose", "arctic fox")
        );
        let names = v15.names("pt").unwrap();
        assert_eq!(names.bird_class, Some(29), "found by its English name");
        assert_eq!(names.classes[29], "ave");
        assert_eq!(names.bird_groups.unwrap()[7], "rapinante");
        assert_eq!(
            (names.human, names.vehicle, names.empty, names.undefined),
            ("humano", "veículo", "vazio", "indefinido")
        );
        let no = v15.names("no").unwrap();
        assert_eq!(
            (no.classes[36].as_str(), no.undefined),
            ("fjellrev", "udefinert")
        );
        assert_eq!(v15.names("sv"), v15.names("se"), "sv is an alias of se");
        assert_eq!(v15.names("se").unwrap().classes[22], "lo");
        assert_eq!(v15.scientific_names["mongoose"], "Herpestes ichneumon");
        assert_eq!(v15.scientific_names["arctic fox"], "Vulpes lagopus");
        // Every scientific name of 1.4 is kept.
        for (en, sci) in &v14.scientific_names {
            assert_eq!(v15.scientific_names.get(en), Some(sci), "{en}");
        }
        let t = v15.temperatures();
        assert_eq!((t.image, t.sequence, t.bird), (1.12, 1.10, Some(1.0)));
    }

    #[test]
    fn download_facts() {
        let v15 = builtin_classifier("deepfaune-v15").unwrap();
        let d = v15.download();
        assert!(d
            .url
            .starts_with("https://pbil.univ-lyon1.fr/software/download/deepfaune/v1.5/"));
        assert!(d
            .url
            .ends_with("/deepfaune-vit_large_patch16_dinov3.lvd1689m.pt"));
        assert_eq!(d.url_size, Some(1_212_611_300));
        assert_eq!(d.mirrors.len(), 1);
        assert!(d.mirrors[0].starts_with("https://huggingface.co/Addax-Data-Science/EUR-DF-v1-5/resolve/e5c04750c44cb2ecbfa4f86624c37ae438f0b3dd/"));
        assert_eq!((d.url_md5, d.url_sha256), ("", ""), "nothing published");
        let head = v15.bird_head.as_ref().unwrap().download();
        assert!(head
            .url
            .ends_with("/v1.5/deepfaune-vit_large_patch16_dinov3.lvd1689m-bird_head.pt"));
        let v14 = builtin_classifier("deepfaune-v14").unwrap();
        assert!(v14.mirrors.is_empty() && v14.url_size.is_none());
    }

    #[test]
    fn older_versions_are_subsets_of_v14_in_the_same_order() {
        let v14 = builtin_classifier("deepfaune-v14").unwrap();
        for id in ["deepfaune-v13", "deepfaune-v11"] {
            let m = builtin_classifier(id).unwrap();
            for lang in ["en", "fr"] {
                let pos: Vec<usize> = m.classes[lang]
                    .iter()
                    .map(|c| {
                        v14.classes[lang]
                            .iter()
                            .position(|d| d == c)
                            .unwrap_or_else(|| panic!("{id} {c}"))
                    })
                    .collect();
                assert!(pos.windows(2).all(|w| w[0] < w[1]), "{id} {lang}");
            }
        }
    }

    #[test]
    fn test_manifests_describe_the_shared_models() {
        for (name, emb) in [("tiny-pixel-c38.toml", 24843), ("tiny-vit-c38.toml", 64)] {
            let m = ClassifierManifest::from_file(&models_dir().join(name)).unwrap();
            assert_eq!((m.num_classes(), m.embedding_dim), (38, emb));
            assert_eq!(m.sha256.len(), 64);
            let shared = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/models")
                .join(&m.file);
            if shared.exists() {
                assert_eq!(
                    crate::manifest::sha256_file(&shared).unwrap(),
                    m.sha256,
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn rejects_bad_manifests() {
        let good = builtin_text("deepfaune-v15", &[ModelKind::Classifier])
            .unwrap()
            .text;
        assert!(ClassifierManifest::from_toml(good, "x").is_ok());
        let cases = [
            good.replace("kind = \"classifier\"", "kind = \"detector\""),
            good.replacen("\"bison\", ", "", 1), // en shorter than fr
            good.replacen("\"badger\"", "\"bison\"", 1), // duplicate
            good.replace("threshold = 0.8", "threshold = 1.5"),
            good.replace("\"Meles meles\"", "\"Meles meles\"\n\"dragon\" = \"Draco\""),
            good.replace("\nes = [\"bisonte\"", "\nxx = [\"bisonte\""),
            good.replace("std = [0.229", "std = [0.0"),
            good.replace("temperature_image = 1.12\n", ""),
            good.replace(
                "temperature_sequence = 1.10",
                "temperature_sequence = -1.10",
            ),
            good.replace("temperature_bird = 1.00\n", ""), // a bird head needs it
            good.replace("url_size = 1212611300", "url_size = 0"),
            good.replace("mirrors = [\"https://", "mirrors = [\"ftp://"),
            good.replace("\nse = [\"bison\"", "\nsv = [\"bison\""), // an alias is no manifest key
            good.replacen("license", "url_md5 = \"abc\"\nlicense", 1),
            good.replace("version = \"1.5\"\n", ""),
            // The bird head's weights fields are checked as a manifest's, its own keys strictly.
            good.replace("sha256 = \"\"\nurl = \"https://pbil", "sha256 = \"abc\"\nurl = \"https://pbil"),
            good.replace("url = \"https://pbil.univ-lyon1.fr/software/download/deepfaune/v1.5/deepfaune-vit_large_patch16_dinov3.lvd1689m-bird_head.pt\"", "url = \"ftp://x\""),
            good.replace("input = \"embedding\"\n", "input = \"embedding\"\ninputs = \"typo\"\n"),
            good.replace("output = \"logits\"\n\n[bird_head.groups]", "\n[bird_head.groups]"),
        ];
        for (i, text) in cases.iter().enumerate() {
            assert_ne!(text, good, "case {i} did not change the text");
            assert!(
                ClassifierManifest::from_toml(text, "x").is_err(),
                "case {i} accepted"
            );
        }
        // A bird temperature without a bird head (1.3 has none).
        let v13 = builtin_text("deepfaune-v13", &[ModelKind::Classifier])
            .unwrap()
            .text;
        assert!(ClassifierManifest::from_toml(v13, "x").is_ok());
        let extra = v13.replace(
            "temperature_sequence = 1.04",
            "temperature_sequence = 1.04\ntemperature_bird = 0.9",
        );
        assert_ne!(extra, v13);
        let e = ClassifierManifest::from_toml(&extra, "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no bird head"), "{e}");
        // The bird head reads its weights file as a manifest does.
        let m = ClassifierManifest::from_toml(good, "x").unwrap();
        let head = m.bird_head.as_ref().unwrap();
        assert_eq!(
            head.file,
            "deepfaune-vit_large_patch16_dinov3.lvd1689m-bird_head.onnx"
        );
        assert_eq!(
            (head.download().url_format, head.input.as_str()),
            ("pt", "embedding")
        );
        let bad = good.replace(
            "input = \"embedding\"\n",
            "input = \"embedding\"\nurl_size = 0\n",
        );
        let e = ClassifierManifest::from_toml(&bad, "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bird_head: url_size must be positive"), "{e}");
    }
}
